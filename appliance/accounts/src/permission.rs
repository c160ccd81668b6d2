//! The fixed catalogue of permissions, and which the built-in roles hold.
//!
//! Custom roles (named sets of these, [`crate::roles`]) are kept in the database; the
//! catalogue is fixed because the server checks each permission by name in one place.

use std::fmt;
use std::str::FromStr;

use crate::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    AgentMonitoring,
    AgentMonitoringReport,
    LiveAudioMonitoring,
    LiveScreenMonitoring,
    Whisper,
    Barge,
    ShowActivityLog,
    ShowWhisperLog,
    AgentActivityAudit,
    HistoricalMetrics,
    RealTimeMetrics,
    /// Implies [`Permission::AgentMonitoringReport`], [`Permission::HistoricalMetrics`] and
    /// [`Permission::RealTimeMetrics`].
    AccessMetrics,
    /// List, play and download recordings.
    Recordings,
    /// Download recordings and index files over SFTP.
    Sftp,
    Administration,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
        Permission::AgentMonitoring,
        Permission::AgentMonitoringReport,
        Permission::LiveAudioMonitoring,
        Permission::LiveScreenMonitoring,
        Permission::Whisper,
        Permission::Barge,
        Permission::ShowActivityLog,
        Permission::ShowWhisperLog,
        Permission::AgentActivityAudit,
        Permission::HistoricalMetrics,
        Permission::RealTimeMetrics,
        Permission::AccessMetrics,
        Permission::Recordings,
        Permission::Sftp,
        Permission::Administration,
    ];

    /// The name administrators see, as the product documentation spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::AgentMonitoring => "Agent Monitoring",
            Permission::AgentMonitoringReport => "Agent Monitoring Report",
            Permission::LiveAudioMonitoring => "Live Audio Monitoring",
            Permission::LiveScreenMonitoring => "Live Screen Monitoring",
            Permission::Whisper => "Whisper",
            Permission::Barge => "Barge",
            Permission::ShowActivityLog => "show_activity_log",
            Permission::ShowWhisperLog => "show_whisper_log",
            Permission::AgentActivityAudit => "Agent activity audit",
            Permission::HistoricalMetrics => "Historical metrics",
            Permission::RealTimeMetrics => "Real-time metrics",
            Permission::AccessMetrics => "Access metrics",
            Permission::Recordings => "Recordings",
            Permission::Sftp => "SFTP",
            Permission::Administration => "Administration",
        }
    }

    /// Whether holding this permission grants `other`: every permission grants itself, and
    /// Access metrics also grants the three metrics permissions it stands for.
    pub fn implies(self, other: Permission) -> bool {
        self == other
            || (self == Permission::AccessMetrics
                && matches!(
                    other,
                    Permission::AgentMonitoringReport
                        | Permission::HistoricalMetrics
                        | Permission::RealTimeMetrics
                ))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name the catalogue does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission \"{0}\"")]
pub struct UnknownPermission(pub String);

/// A permission by the name the catalogue gives it (exactly, as stored in custom roles).
impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Permission, UnknownPermission> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl Role {
    /// The permissions a built-in role is granted (before implication).
    pub fn granted(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Administrator => &Permission::ALL,
            Role::Supervisor => &[
                AgentMonitoring,
                LiveAudioMonitoring,
                LiveScreenMonitoring,
                Whisper,
                Barge,
                ShowWhisperLog,
                AccessMetrics,
                Recordings,
            ],
            Role::Auditor => &[
                AgentMonitoringReport,
                ShowActivityLog,
                ShowWhisperLog,
                AgentActivityAudit,
                HistoricalMetrics,
                Recordings,
                Sftp,
            ],
            Role::Agent => &[],
        }
    }

    /// Whether the role holds `permission`, directly or through one that implies it.
    pub fn has(self, permission: Permission) -> bool {
        self.granted()
            .iter()
            .any(|granted| granted.implies(permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_metrics_implies_the_three_before_it() {
        assert!(Role::Supervisor.has(Permission::AccessMetrics));
        assert!(Role::Supervisor.has(Permission::AgentMonitoringReport));
        assert!(Role::Supervisor.has(Permission::HistoricalMetrics));
        assert!(Role::Supervisor.has(Permission::RealTimeMetrics));
        assert!(!Role::Auditor.has(Permission::RealTimeMetrics));
    }

    #[test]
    fn built_in_roles() {
        assert!(Permission::ALL.iter().all(|p| Role::Administrator.has(*p)));
        assert!(Permission::ALL.iter().all(|p| !Role::Agent.has(*p)));
        assert!(Role::Auditor.has(Permission::Sftp));
        assert!(Role::Auditor.has(Permission::ShowActivityLog));
        assert!(!Role::Supervisor.has(Permission::Sftp));
        assert!(!Role::Supervisor.has(Permission::Administration));
    }

    #[test]
    fn permissions_parse_by_their_catalogue_names() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert_eq!(
            "recordings".parse::<Permission>(),
            Err(UnknownPermission("recordings".into())),
            "stored names are exact"
        );
    }

    #[test]
    fn every_permission_implies_itself_and_little_else() {
        for p in Permission::ALL {
            assert!(p.implies(p), "{p}");
            let others = Permission::ALL
                .iter()
                .filter(|q| **q != p && p.implies(**q));
            let expected = if p == Permission::AccessMetrics { 3 } else { 0 };
            assert_eq!(others.count(), expected, "{p}");
        }
    }
}
