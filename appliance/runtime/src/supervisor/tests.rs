use std::sync::atomic::{AtomicU32, Ordering};

use prometheus_client::encoding::text::encode;

use super::*;

fn policy() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(800),
        stable_after: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(2),
    }
}

/// A service that serves (ready, then waits for shutdown) and counts its starts.
fn steady(starts: Arc<AtomicU32>) -> impl Fn(ServiceContext) -> ServiceFuture + Send + Sync {
    move |ctx: ServiceContext| {
        starts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            ctx.set_ready();
            ctx.shutdown().cancelled().await;
            Ok(())
        })
    }
}

fn status(handle: &SupervisorHandle, name: &str) -> ServiceStatus {
    handle
        .statuses()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

#[test]
fn backoff_doubles_up_to_the_ceiling() {
    let p = policy();
    let delays: Vec<u64> = (0..6).map(|n| p.backoff(n).as_millis() as u64).collect();
    assert_eq!(delays, [100, 200, 400, 800, 800, 800]);
    assert_eq!(p.backoff(u32::MAX), p.max_backoff);
}

#[tokio::test(start_paused = true)]
async fn a_failing_service_is_restarted_with_backoff_while_the_others_keep_serving() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let flaky_starts = Arc::new(AtomicU32::new(0));
    let steady_starts = Arc::new(AtomicU32::new(0));
    let start_times = Arc::new(Mutex::new(Vec::new()));
    supervisor.add("flaky", {
        let (flaky_starts, start_times) = (flaky_starts.clone(), start_times.clone());
        move |ctx: ServiceContext| {
            let run = flaky_starts.fetch_add(1, Ordering::SeqCst);
            start_times.lock().unwrap().push(Instant::now());
            async move {
                if run < 3 {
                    return Err::<(), BoxError>(format!("port busy (attempt {run})").into());
                }
                ctx.set_ready();
                ctx.shutdown().cancelled().await;
                Ok(())
            }
        }
    });
    supervisor.add("steady", steady(steady_starts.clone()));
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));

    handle.wait_all_ready().await;
    assert_eq!(flaky_starts.load(Ordering::SeqCst), 4);
    assert_eq!(
        steady_starts.load(Ordering::SeqCst),
        1,
        "the healthy service was not disturbed"
    );
    let times = start_times.lock().unwrap().clone();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, [100, 200, 400]);

    let flaky = status(&handle, "flaky");
    assert_eq!(flaky.restarts, 3);
    assert_eq!(flaky.state, ServiceState::Running);
    assert_eq!(flaky.last_error.as_deref(), Some("port busy (attempt 2)"));
    assert!(handle.all_up());

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("service_restarts_total{service=\"flaky\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("service_restarts_total{service=\"steady\"} 0"),
        "{text}"
    );
    assert!(text.contains("service_up{service=\"flaky\"} 1"), "{text}");

    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_caught_counted_and_restarted() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let starts = Arc::new(AtomicU32::new(0));
    supervisor.add("panicky", {
        let starts = starts.clone();
        move |ctx: ServiceContext| {
            let run = starts.fetch_add(1, Ordering::SeqCst);
            async move {
                if run == 0 {
                    panic!("index out of bounds in a parser");
                }
                ctx.set_ready();
                ctx.shutdown().cancelled().await;
                Ok(())
            }
        }
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    handle.wait_all_ready().await;
    let status = status(&handle, "panicky");
    assert_eq!(status.restarts, 1);
    assert_eq!(
        status.last_error.as_deref(),
        Some("panicked: index out of bounds in a parser")
    );
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn returning_early_counts_as_a_failure_and_errors_show_their_cause() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let starts = Arc::new(AtomicU32::new(0));
    supervisor.add("quitter", {
        let starts = starts.clone();
        move |ctx: ServiceContext| {
            let run = starts.fetch_add(1, Ordering::SeqCst);
            async move {
                match run {
                    0 => Ok(()),
                    1 => {
                        let inner = std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use");
                        Err(Box::new(BindFailed(inner)) as BoxError)
                    }
                    _ => {
                        ctx.set_ready();
                        ctx.shutdown().cancelled().await;
                        Ok(())
                    }
                }
            }
        }
    });
    let handle = supervisor.handle();
    let mut changes = handle.subscribe();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    let mut errors = Vec::new();
    while !handle.all_up() {
        changes.changed().await.unwrap();
        if let Some(e) = status(&handle, "quitter").last_error
            && errors.last() != Some(&e)
        {
            errors.push(e);
        }
    }
    assert_eq!(
        errors,
        [
            "stopped by itself while it should be running",
            "cannot bind listener: in use"
        ]
    );
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_every_service_and_aborts_one_that_hangs() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let finalised = Arc::new(AtomicU32::new(0));
    supervisor.add("recorder", {
        let finalised = finalised.clone();
        move |ctx: ServiceContext| {
            let finalised = finalised.clone();
            async move {
                ctx.set_ready();
                ctx.shutdown().cancelled().await;
                // Finalising open recordings takes a while; it must be allowed to finish.
                tokio::time::sleep(Duration::from_millis(500)).await;
                finalised.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    });
    supervisor.add("stuck", |ctx: ServiceContext| async move {
        ctx.set_ready();
        std::future::pending::<()>().await;
        Ok(())
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    handle.wait_all_ready().await;

    let asked = Instant::now();
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(finalised.load(Ordering::SeqCst), 1);
    assert_eq!(
        asked.elapsed(),
        policy().drain_timeout,
        "the stuck one was aborted at the limit"
    );
    for s in handle.statuses() {
        assert_eq!(s.state, ServiceState::Stopped, "{}", s.name);
        assert_eq!(s.restarts, 0, "{}", s.name);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_backoff_does_not_start_the_service_again() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let starts = Arc::new(AtomicU32::new(0));
    supervisor.add("failing", {
        let starts = starts.clone();
        move |_ctx: ServiceContext| {
            starts.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), BoxError>("always".into()) }
        }
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(status(&handle, "failing").state, ServiceState::Backoff);
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(status(&handle, "failing").state, ServiceState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn backoff_starts_over_after_a_stable_run() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    let start_times = Arc::new(Mutex::new(Vec::new()));
    supervisor.add("sometimes", {
        let start_times = start_times.clone();
        move |ctx: ServiceContext| {
            let run = {
                let mut times = start_times.lock().unwrap();
                times.push(Instant::now());
                times.len()
            };
            async move {
                // Runs 1-2 fail at once; run 3 stays up past `stable_after` and then fails;
                // run 4 fails at once; run 5 serves.
                match run {
                    3 => tokio::time::sleep(Duration::from_secs(11)).await,
                    5 => {
                        ctx.set_ready();
                        ctx.shutdown().cancelled().await;
                        return Ok(());
                    }
                    _ => {}
                }
                Err::<(), BoxError>("boom".into())
            }
        }
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    handle.wait_all_ready().await;
    let times = start_times.lock().unwrap().clone();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, [100, 200, 11_000 + 100, 200]);
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn started_means_ready_or_failing_but_not_still_trying_for_the_first_time() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    supervisor.add("web", steady(Arc::new(AtomicU32::new(0))));
    supervisor.add("slow", |ctx: ServiceContext| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctx.set_ready();
        ctx.shutdown().cancelled().await;
        Ok(())
    });
    supervisor.add("broken", |_ctx: ServiceContext| async {
        Err::<(), BoxError>("no".into())
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    let began = Instant::now();
    handle.wait_started().await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(1),
        "waited for the slow one only"
    );
    assert_eq!(handle.summary(), "serving: web, slow; restarting: broken");
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn summary_names_services_by_state() {
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(policy(), &mut registry);
    supervisor.add("web", steady(Arc::new(AtomicU32::new(0))));
    supervisor.add("turn", |_ctx: ServiceContext| async {
        Err::<(), BoxError>("no".into())
    });
    let handle = supervisor.handle();
    assert_eq!(handle.summary(), "stopping: web, turn");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(handle.summary(), "serving: web; restarting: turn");
    assert!(!handle.all_up());
    shutdown.cancel();
    running.await.unwrap();
}

/// An error with a cause, as a service's own error types have.
#[derive(Debug)]
struct BindFailed(std::io::Error);

impl std::fmt::Display for BindFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot bind listener")
    }
}

impl std::error::Error for BindFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
