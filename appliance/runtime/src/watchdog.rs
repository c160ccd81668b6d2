//! The health-checked loop behind systemd's watchdog.
//!
//! systemd restarts the daemon when `WATCHDOG=1` stops arriving. Sending it from a timer alone
//! would only prove the timer runs, so each beat is sent only after a health check passes: the
//! check runs on the same runtime the services use and must finish within half the interval.
//!
//! A service that is failing and being restarted by the supervisor does not stop the beats:
//! the supervisor is already dealing with it, and restarting the whole daemon would take the
//! healthy services down too. What does stop them is a check that fails or hangs, meaning the
//! daemon as a whole can no longer do its work (the database does not answer, the runtime is
//! starved).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`: every `interval / 2`, runs `check` and calls `beat` if it passed.
pub async fn run<C, F>(
    interval: Duration,
    check: C,
    mut beat: impl FnMut(),
    shutdown: CancellationToken,
) where
    C: Fn() -> F,
    F: Future<Output = Result<(), String>>,
{
    let period = interval / 2;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let verdict = match tokio::time::timeout(period, check()).await {
            Ok(verdict) => verdict,
            Err(_) => Err(format!(
                "health check took longer than {} ms",
                period.as_millis()
            )),
        };
        match verdict {
            Ok(()) => {
                if !healthy {
                    tracing::info!("healthy again; watchdog resumed");
                }
                healthy = true;
                beat();
            }
            Err(why) => {
                if healthy {
                    tracing::error!(reason = %why, "unhealthy; withholding the watchdog beat");
                }
                healthy = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn beats_only_while_the_check_passes() {
        let healthy = Arc::new(AtomicBool::new(true));
        let beats = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (healthy, beats, shutdown) = (healthy.clone(), beats.clone(), shutdown.clone());
            async move {
                let check = || {
                    let healthy = healthy.load(Ordering::SeqCst);
                    async move {
                        if healthy {
                            Ok(())
                        } else {
                            Err("sick".to_owned())
                        }
                    }
                };
                run(
                    Duration::from_secs(2),
                    check,
                    || {
                        beats.fetch_add(1, Ordering::SeqCst);
                    },
                    shutdown,
                )
                .await;
            }
        });
        // Ticks at 0 s, 1 s, 2 s, ... (interval / 2).
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 5);
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 5, "no beat while unhealthy");
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 7);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_withholds_the_beat() {
        let beats = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (beats, shutdown) = (beats.clone(), shutdown.clone());
            async move {
                let check = || std::future::pending::<Result<(), String>>();
                run(
                    Duration::from_secs(2),
                    check,
                    || {
                        beats.fetch_add(1, Ordering::SeqCst);
                    },
                    shutdown,
                )
                .await;
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(beats.load(Ordering::SeqCst), 0);
        shutdown.cancel();
        task.await.unwrap();
    }
}
