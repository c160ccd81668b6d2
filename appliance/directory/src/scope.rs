//! Scope: which agents, groups and teams an account may see and act on. Permissions say
//! *what* an account may do; scope says *to whom*.
//!
//! - An Administrator or an Auditor sees everything.
//! - A Supervisor sees the groups and teams assigned to their account
//!   ([`set`]) and every agent in one of them.
//! - An Agent sees only themself: the agent whose account is theirs.
//! - An account with a custom role is scoped like a Supervisor: by the groups and teams
//!   assigned to it, so it sees nothing until an administrator assigns some.
//! - An account that does not exist sees nothing.
//!
//! [`Scope::resolve`] is a pure function of those rows. Every query of agents, devices or
//! recordings is restricted by the one condition [`Scope::sql_condition`] gives, so pages,
//! the API and exports cannot disagree on who sees what.

use std::collections::BTreeSet;

use tapline_accounts::Role;
use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{Connection, OptionalExtension};

use crate::groupings::{self, Grouping};
use crate::{DirectoryError, account_row};

/// What an account may see and act on. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    agents: Reach,
    groups: Reach,
    teams: Reach,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    All,
    Only(BTreeSet<i64>),
}

impl Reach {
    fn allows(&self, id: i64) -> bool {
        match self {
            Reach::All => true,
            Reach::Only(ids) => ids.contains(&id),
        }
    }

    fn none() -> Reach {
        Reach::Only(BTreeSet::new())
    }
}

/// Where an agent is: the rows [`Scope::resolve`] needs from `agents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub agent: i64,
    pub group: Option<i64>,
    pub team: Option<i64>,
    /// The agent's own sign-in account.
    pub account: Option<i64>,
}

/// The groups and teams assigned to an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub groups: BTreeSet<i64>,
    pub teams: BTreeSet<i64>,
}

impl Scope {
    /// Everything: for Tapline itself, and what Administrators and Auditors get.
    pub fn everything() -> Scope {
        Scope {
            agents: Reach::All,
            groups: Reach::All,
            teams: Reach::All,
        }
    }

    /// Nothing at all.
    pub fn nothing() -> Scope {
        Scope {
            agents: Reach::none(),
            groups: Reach::none(),
            teams: Reach::none(),
        }
    }

    /// The scope of the account in row `account` with `role` (`None`: a custom role), given
    /// its assignment and where every agent is.
    pub fn resolve(
        role: Option<Role>,
        account: i64,
        assignment: &Assignment,
        placements: &[Placement],
    ) -> Scope {
        match role {
            Some(Role::Administrator | Role::Auditor) => Scope::everything(),
            Some(Role::Supervisor) | None => {
                let in_scope = |p: &&Placement| {
                    p.group.is_some_and(|g| assignment.groups.contains(&g))
                        || p.team.is_some_and(|t| assignment.teams.contains(&t))
                };
                Scope {
                    agents: Reach::Only(
                        placements
                            .iter()
                            .filter(in_scope)
                            .map(|p| p.agent)
                            .collect(),
                    ),
                    groups: Reach::Only(assignment.groups.clone()),
                    teams: Reach::Only(assignment.teams.clone()),
                }
            }
            Some(Role::Agent) => Scope {
                agents: Reach::Only(
                    placements
                        .iter()
                        .filter(|p| p.account == Some(account))
                        .map(|p| p.agent)
                        .collect(),
                ),
                groups: Reach::none(),
                teams: Reach::none(),
            },
        }
    }

    /// Reads the rows [`Scope::resolve`] needs for the account with this name (any case).
    pub fn load(conn: &Connection, account_name: &str) -> Result<Scope, DirectoryError> {
        let account: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, role FROM accounts WHERE name = ?1",
                [account_name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((account, role)) = account else {
            return Ok(Scope::nothing());
        };
        let role = role.parse::<Role>().ok();
        if matches!(role, Some(Role::Administrator | Role::Auditor)) {
            return Ok(Scope::resolve(role, account, &Assignment::default(), &[]));
        }
        let assignment = assignment(conn, account)?;
        let mut statement =
            conn.prepare_cached("SELECT id, group_id, team_id, account_id FROM agents")?;
        let placements = statement
            .query_map([], |row| {
                Ok(Placement {
                    agent: row.get(0)?,
                    group: row.get(1)?,
                    team: row.get(2)?,
                    account: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scope::resolve(role, account, &assignment, &placements))
    }

    /// Whether no agent is out of reach.
    pub fn sees_everything(&self) -> bool {
        self.agents == Reach::All
    }

    /// Whether the account may see and act on the agent in row `agent`.
    pub fn allows_agent(&self, agent: i64) -> bool {
        self.agents.allows(agent)
    }

    pub fn allows_group(&self, group: i64) -> bool {
        self.groups.allows(group)
    }

    pub fn allows_team(&self, team: i64) -> bool {
        self.teams.allows(team)
    }

    /// The agent rows in reach; `None` means all of them.
    pub fn agents(&self) -> Option<&BTreeSet<i64>> {
        match &self.agents {
            Reach::All => None,
            Reach::Only(ids) => Some(ids),
        }
    }

    /// [`Scope::agents`] as a list, for code that takes a slice of agent rows.
    pub fn allowed_agents(&self) -> Option<Vec<i64>> {
        self.agents().map(|ids| ids.iter().copied().collect())
    }

    /// The condition that keeps only rows whose `column` (an agent row: `agents.id`,
    /// `agent_devices.agent`, `recordings.agent_ref`) is in scope, reading the parameter
    /// `?{param}`, which is to be bound to [`Scope::sql_param`]. The text does not depend on
    /// the scope, so a statement can be prepared once for every account. `column` is a name
    /// written in code, never input.
    ///
    /// With everything in scope the parameter is NULL and every row passes, rows without an
    /// agent included; otherwise it is a JSON array of the agent rows in scope, and a row
    /// without an agent is out of scope.
    pub fn sql_condition(column: &str, param: usize) -> String {
        format!("(?{param} IS NULL OR {column} IN (SELECT value FROM json_each(?{param})))")
    }

    /// The value of [`Scope::sql_condition`]'s parameter.
    pub fn sql_param(&self) -> Option<String> {
        self.agents().map(|ids| {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("[{}]", ids.join(","))
        })
    }
}

/// The groups and teams assigned to the account in row `account`.
pub fn assignment(conn: &Connection, account: i64) -> Result<Assignment, DirectoryError> {
    let ids = |sql: &str| -> Result<BTreeSet<i64>, DirectoryError> {
        let mut statement = conn.prepare_cached(sql)?;
        let rows = statement.query_map([account], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    Ok(Assignment {
        groups: ids("SELECT group_id FROM scope_groups WHERE account_id = ?1")?,
        teams: ids("SELECT team_id FROM scope_teams WHERE account_id = ?1")?,
    })
}

/// Assigns exactly these groups and teams (by name) to the account: a supervisor's scope.
/// Nothing is written when the assignment is already that.
pub fn set(
    store: &Store,
    account_name: &str,
    groups: &[&str],
    teams: &[&str],
    actor: &Actor<'_>,
) -> Result<(), DirectoryError> {
    store.write(|tx| {
        let account = account_row(tx, account_name)?;
        let resolve = |kind: Grouping, names: &[&str]| -> Result<BTreeSet<i64>, DirectoryError> {
            names
                .iter()
                .map(|name| {
                    groupings::find_in(tx, kind, name)?.ok_or_else(|| DirectoryError::NotFound {
                        what: kind.as_str(),
                        key: (*name).to_owned(),
                    })
                })
                .collect()
        };
        let wanted = Assignment {
            groups: resolve(Grouping::Group, groups)?,
            teams: resolve(Grouping::Team, teams)?,
        };
        if assignment(tx, account)? == wanted {
            return Ok(());
        }
        tx.execute("DELETE FROM scope_groups WHERE account_id = ?1", [account])?;
        tx.execute("DELETE FROM scope_teams WHERE account_id = ?1", [account])?;
        for group in &wanted.groups {
            tx.execute(
                "INSERT INTO scope_groups (account_id, group_id) VALUES (?1, ?2)",
                (account, group),
            )?;
        }
        for team in &wanted.teams {
            tx.execute(
                "INSERT INTO scope_teams (account_id, team_id) VALUES (?1, ?2)",
                (account, team),
            )?;
        }
        let mut groups: Vec<&str> = groups.iter().map(|g| g.trim()).collect();
        let mut teams: Vec<&str> = teams.iter().map(|t| t.trim()).collect();
        groups.sort_unstable();
        groups.dedup();
        teams.sort_unstable();
        teams.dedup();
        let params = serde_json::json!({ "groups": groups, "teams": teams });
        let object = format!("Scope of {account_name}");
        tapline_audit::append(
            tx,
            &actor.entry(events::DIRECTORY, events::SCOPE_SET, &object, "", params),
        )?;
        Ok(())
    })
}
