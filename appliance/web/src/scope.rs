//! Which agents a caller may see and act on.
//!
//! A supervisor sees only the agents of the groups and teams in their scope; the agent
//! directory decides that ([`tapline_directory::Scope`]). The guard asks the
//! [`ScopeResolver`] once per request, checks every route that names an agent
//! ([`crate::routes::Route::agent_param`]) before the handler runs, and hands the handler the
//! resolved scope as [`Caller::scope`](crate::guard::Caller). Handlers restrict what they list
//! with that same value, in SQL:
//!
//! ```text
//! let sql = format!("... WHERE {}", Scope::sql_condition("recordings.agent_ref", 1));
//! statement.query([caller.scope.sql_param()])
//! ```
//!
//! or with [`Scope::allows_agent`] for one agent row, so pages, the API and exports cannot
//! disagree on who sees what. Nothing relies on hiding buttons.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use tapline_accounts::Role;
use tapline_directory::DirectoryError;
use tapline_directory::scope::{self as directory_scope, Placement};
use tapline_store::Store;
use tapline_store::rusqlite::{Connection, OptionalExtension};

/// The agents a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every agent, and calls without one (administrators, auditors).
    All,
    /// Only these agents.
    Agents(Agents),
}

/// The agents of a restricted scope: their directory rows, and the Agent Ids and extensions
/// that requests name them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agents {
    directory: tapline_directory::Scope,
    /// Agent Ids and extensions as stored, for [`Scope::allows`] and iteration.
    keys: BTreeSet<String>,
    /// Agent Ids and extensions in lower case: Agent Ids match without regard to case.
    folded: BTreeSet<String>,
}

static EVERYTHING: LazyLock<tapline_directory::Scope> =
    LazyLock::new(tapline_directory::Scope::everything);

impl Scope {
    /// Whether the caller may see the agent a request names by Agent Id or extension.
    pub fn allows(&self, agent: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Agents(agents) => {
                agents.keys.contains(agent) || agents.folded.contains(&agent.to_lowercase())
            }
        }
    }

    /// The directory's scope: what [`Scope::sql_param`] and [`Scope::allows_agent`] ask.
    pub fn directory(&self) -> &tapline_directory::Scope {
        match self {
            Scope::All => &EVERYTHING,
            Scope::Agents(agents) => &agents.directory,
        }
    }

    /// Whether no agent, and no call without one, is out of reach.
    pub fn sees_everything(&self) -> bool {
        self.directory().sees_everything()
    }

    /// Whether the caller may see the agent in directory row `agent` (`agents.id`,
    /// `recordings.agent_ref`).
    pub fn allows_agent(&self, agent: i64) -> bool {
        self.directory().allows_agent(agent)
    }

    /// The condition that keeps the rows of `column` (an agent row: `agents.id`,
    /// `agent_devices.agent`, `recordings.agent_ref`) in scope, reading parameter `?{param}`,
    /// to be bound to [`Scope::sql_param`]. The same text for every caller.
    pub fn sql_condition(column: &str, param: usize) -> String {
        tapline_directory::Scope::sql_condition(column, param)
    }

    /// The value of [`Scope::sql_condition`]'s parameter for this caller.
    pub fn sql_param(&self) -> Option<String> {
        self.directory().sql_param()
    }

    /// The agent rows in reach, `None` for all of them (calls without an agent included).
    pub fn allowed_agents(&self) -> Option<Vec<i64>> {
        self.directory().allowed_agents()
    }
}

impl Agents {
    /// A scope that reaches no agent.
    pub fn none() -> Agents {
        Agents {
            directory: tapline_directory::Scope::nothing(),
            keys: BTreeSet::new(),
            folded: BTreeSet::new(),
        }
    }

    fn new(directory: tapline_directory::Scope, keys: BTreeSet<String>) -> Agents {
        let folded = keys.iter().map(|key| key.to_lowercase()).collect();
        Agents {
            directory,
            keys,
            folded,
        }
    }
}

/// Agents named only by Agent Id or extension, with no directory rows behind them: requests
/// naming them pass [`Scope::allows`], and every directory row is out of reach.
impl<const N: usize> From<[String; N]> for Agents {
    fn from(keys: [String; N]) -> Agents {
        Agents::new(
            tapline_directory::Scope::nothing(),
            keys.into_iter().collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Agents {
    type Item = &'a String;
    type IntoIter = std::collections::btree_set::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

/// Finds a signed-in account's scope. Runs on a blocking thread: it may read the database.
pub trait ScopeResolver: Send + Sync {
    fn scope_of(&self, account: &str) -> Scope;
}

/// Every account sees every agent: for tests of what scope does not decide.
#[derive(Debug, Clone, Copy)]
pub struct EveryAgent;

impl ScopeResolver for EveryAgent {
    fn scope_of(&self, _account: &str) -> Scope {
        Scope::All
    }
}

/// The agent directory's scope, as [`tapline_directory::Scope::load`] decides it, read at
/// every request so a change of role, assignment or agent applies at the caller's next click.
///
/// Where every agent is (the one read that grows with the directory) is kept between
/// requests and read again only when `directory_version` has moved: its triggers bump it in
/// the transaction of every change to `agents`. The account's role and its assigned groups
/// and teams are small indexed reads, done every time.
pub struct DirectoryScopes {
    store: Arc<Store>,
    placements: Mutex<Option<Arc<Placements>>>,
}

/// Where every agent is, as of one `directory_version`.
struct Placements {
    version: i64,
    rows: Vec<Placement>,
    /// Each agent row's Agent Id and extension.
    keys: HashMap<i64, (String, Option<String>)>,
}

impl DirectoryScopes {
    pub fn new(store: Arc<Store>) -> DirectoryScopes {
        DirectoryScopes {
            store,
            placements: Mutex::new(None),
        }
    }

    fn load(&self, account: &str) -> Result<Scope, DirectoryError> {
        self.store.read(|conn| {
            let found: Option<(i64, String)> = conn
                .query_row(
                    "SELECT id, role FROM accounts WHERE name = ?1",
                    [account],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((row, role)) = found else {
                return Ok(Scope::Agents(Agents::none()));
            };
            // As `tapline_directory::Scope::load`: a role this release does not know is a
            // custom role, scoped by its assignment.
            let role = role.parse::<Role>().ok();
            if matches!(role, Some(Role::Administrator | Role::Auditor)) {
                return Ok(Scope::All);
            }
            let assignment = directory_scope::assignment(conn, row)?;
            let placements = self.placements(conn)?;
            let directory =
                tapline_directory::Scope::resolve(role, row, &assignment, &placements.rows);
            if directory.sees_everything() {
                return Ok(Scope::All);
            }
            let mut keys = BTreeSet::new();
            for agent in directory.agents().into_iter().flatten() {
                if let Some((agent_id, extension)) = placements.keys.get(agent) {
                    keys.insert(agent_id.clone());
                    keys.extend(extension.clone());
                }
            }
            Ok(Scope::Agents(Agents::new(directory, keys)))
        })
    }

    /// The placements as of the current `directory_version`, read again if it moved.
    fn placements(&self, conn: &Connection) -> Result<Arc<Placements>, DirectoryError> {
        // The version is read before the rows: rows at least as new as the version they are
        // kept under only cost an extra read later, never a stale answer.
        let version: i64 = conn.query_row("SELECT version FROM directory_version", [], |row| {
            row.get(0)
        })?;
        let cached = self
            .placements
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(cached) = cached
            && cached.version == version
        {
            return Ok(cached);
        }
        let mut statement = conn.prepare_cached(
            "SELECT id, group_id, team_id, account_id, agent_id, extension FROM agents",
        )?;
        let mut rows = Vec::new();
        let mut keys = HashMap::new();
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            let agent = row.get(0)?;
            rows.push(Placement {
                agent,
                group: row.get(1)?,
                team: row.get(2)?,
                account: row.get(3)?,
            });
            keys.insert(agent, (row.get(4)?, row.get(5)?));
        }
        let fresh = Arc::new(Placements {
            version,
            rows,
            keys,
        });
        *self
            .placements
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }
}

impl ScopeResolver for DirectoryScopes {
    fn scope_of(&self, account: &str) -> Scope {
        self.load(account).unwrap_or_else(|err| {
            // Fail closed: a caller whose scope cannot be read sees no agent.
            tracing::error!(error = %err, account, "cannot read the caller's scope");
            Scope::Agents(Agents::none())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_audit::Actor;
    use tapline_directory::{AgentFields, Grouping, agents, groupings};

    fn agent(agent_id: &str, extension: &str, group: &str) -> AgentFields {
        AgentFields {
            agent_id: agent_id.to_owned(),
            name: format!("Agent {agent_id}"),
            extension: Some(extension.to_owned()),
            group: Some(group.to_owned()),
            ..AgentFields::default()
        }
    }

    #[test]
    fn the_directory_decides_and_changes_apply_at_the_next_request() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(Store::open_in(dir.path()).expect("store"));
        for (name, role) in [("root", Role::Administrator), ("sam", Role::Supervisor)] {
            tapline_accounts::upsert(&store, name, role, "a long password", false, &Actor::SYSTEM)
                .expect("account");
        }
        for group in ["North", "South"] {
            groupings::create(&store, Grouping::Group, group, &Actor::SYSTEM).expect("group");
        }
        let ann =
            agents::create(&store, &agent("Ann", "201", "North"), &Actor::SYSTEM).expect("agent");
        let bob =
            agents::create(&store, &agent("bob", "202", "South"), &Actor::SYSTEM).expect("agent");
        directory_scope::set(&store, "sam", &["North"], &[], &Actor::SYSTEM).expect("scope");
        let scopes = DirectoryScopes::new(store.clone());

        assert_eq!(scopes.scope_of("root"), Scope::All);
        assert_eq!(scopes.scope_of("root").sql_param(), None);
        let sam = scopes.scope_of("sam");
        assert!(sam.allows("ann") && sam.allows("Ann") && sam.allows("201"));
        assert!(!sam.allows("bob") && !sam.allows("202"));
        assert!(sam.allows_agent(ann) && !sam.allows_agent(bob));
        assert_eq!(sam.sql_param(), Some(format!("[{ann}]")));
        assert_eq!(sam.allowed_agents(), Some(vec![ann]));
        assert!(!scopes.scope_of("nobody").allows("ann"));

        // An agent moved into the supervisor's group: seen at the next request.
        agents::update(&store, bob, &agent("bob", "202", "North"), &Actor::SYSTEM).expect("move");
        let sam = scopes.scope_of("sam");
        assert!(sam.allows("bob") && sam.allows_agent(bob));
        // An assignment taken away: also at the next request, with no agent changed.
        directory_scope::set(&store, "sam", &[], &[], &Actor::SYSTEM).expect("scope");
        let sam = scopes.scope_of("sam");
        assert!(!sam.allows("ann") && !sam.allows_agent(ann));
        assert_eq!(sam.sql_param(), Some("[]".to_owned()));
    }

    #[test]
    fn deleting_a_group_moves_the_version_its_agents_are_cached_under() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(Store::open_in(dir.path()).expect("store"));
        tapline_accounts::upsert(
            &store,
            "sam",
            Role::Supervisor,
            "a long password",
            false,
            &Actor::SYSTEM,
        )
        .expect("account");
        let north =
            groupings::create(&store, Grouping::Group, "North", &Actor::SYSTEM).expect("group");
        let ann =
            agents::create(&store, &agent("ann", "201", "North"), &Actor::SYSTEM).expect("agent");
        directory_scope::set(&store, "sam", &["North"], &[], &Actor::SYSTEM).expect("scope");
        let scopes = DirectoryScopes::new(store.clone());
        assert!(scopes.scope_of("sam").allows_agent(ann));
        groupings::delete(&store, Grouping::Group, north, &Actor::SYSTEM).expect("delete");
        // A new group may take the deleted one's row; Ann is in no group now.
        groupings::create(&store, Grouping::Group, "West", &Actor::SYSTEM).expect("group");
        directory_scope::set(&store, "sam", &["West"], &[], &Actor::SYSTEM).expect("scope");
        assert!(!scopes.scope_of("sam").allows_agent(ann));
    }
}
