//! Each user's feedback state for raw requests: their recent raw events
//! ([`RawEvent`], column text as the event log holds it, never ids), behind one interface,
//! [`Store`].
//!
//! [`Embedded`] keeps them in a [redb](https://docs.rs/redb) file: a maintained, pure-Rust,
//! embedded key-value store with ACID transactions and copy-on-write B-trees, whose commits
//! are durable when `commit` returns (no separate write-ahead log to configure). Its single
//! writer suits the server: one write transaction per `/events` request, so a request's events
//! are stored all together or not at all, and an acknowledged one survives a crash. A user's
//! events are one value (CBOR: times and text exact), read whole by `/score`.
//!
//! [`Redis`] keeps the same values in a Redis server, so that replicas behind a load balancer
//! share them: one optimistic transaction (`WATCH` the request's users, read, merge, `MULTI`
//! ... `EXEC`, retried when another replica wrote one of them meanwhile) per request. Its
//! durability is the Redis server's (`appendonly yes` with `appendfsync always` loses nothing
//! acknowledged).

use crate::import::online::RawEvent;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// User key -> the user's raw events (CBOR), time-ordered.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");

/// Why the store failed: the file and what happened.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where users' raw events live.
pub trait Store: Send + Sync {
    /// Adds `events` (user key, event) in one durable step: each is placed into its user's
    /// events by `merge`. On `Ok`, every one of them is stored; on `Err`, none is.
    fn append(
        &self,
        events: Vec<(String, RawEvent)>,
        merge: &(dyn Fn(&mut Vec<RawEvent>, RawEvent) + Sync),
    ) -> Result<(), StoreError>;

    /// The user's stored events, time-ordered (empty for a user never seen).
    fn events(&self, user: &str) -> Result<Vec<RawEvent>, StoreError>;

    /// How many users have events.
    fn users(&self) -> Result<u64, StoreError>;
}

/// The embedded store: one redb file.
pub struct Embedded {
    path: PathBuf,
    db: redb::Database,
}

fn encode(events: &[RawEvent]) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![];
    ciborium::into_writer(events, &mut out).map_err(|e| StoreError(format!("cannot encode a user's events: {e}")))?;
    Ok(out)
}

/// A user's events from their stored bytes; `place` (the file, or `redis`) begins the message.
fn decode(bytes: &[u8], user: &str, place: &dyn std::fmt::Display) -> Result<Vec<RawEvent>, StoreError> {
    ciborium::from_reader(bytes).map_err(|e| StoreError(format!("{place}: user {user:?}'s events cannot be read: {e}")))
}

/// A request's events grouped by user, users in order of first appearance and each user's
/// events in the order given: each store reads and writes a user once per request.
fn by_user(events: Vec<(String, RawEvent)>) -> Vec<(String, Vec<RawEvent>)> {
    let mut groups: Vec<(String, Vec<RawEvent>)> = vec![];
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (user, e) in events {
        match index.get(&user) {
            Some(i) => groups[*i].1.push(e),
            None => {
                index.insert(user.clone(), groups.len());
                groups.push((user, vec![e]));
            }
        }
    }
    groups
}

impl Embedded {
    /// Opens the store at `path`, creating it if missing.
    pub fn open(path: &Path) -> Result<Embedded, StoreError> {
        let fail = |e: &dyn std::fmt::Display| StoreError(format!("{}: {e}", path.display()));
        let db = redb::Database::create(path).map_err(|e| fail(&e))?;
        // The table exists from the start, so that reads of a fresh store find it.
        let tx = db.begin_write().map_err(|e| fail(&e))?;
        tx.open_table(USERS).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))?;
        Ok(Embedded { path: path.to_path_buf(), db })
    }

    fn fail(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError(format!("{}: {e}", self.path.display()))
    }
}

impl Store for Embedded {
    fn append(
        &self,
        events: Vec<(String, RawEvent)>,
        merge: &(dyn Fn(&mut Vec<RawEvent>, RawEvent) + Sync),
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut table = tx.open_table(USERS).map_err(|e| self.fail(e))?;
            // Each user once: read, merge every event of theirs, write back.
            for (user, new) in by_user(events) {
                let mut stored = match table.get(user.as_str()).map_err(|e| self.fail(e))? {
                    Some(v) => decode(v.value(), &user, &self.path.display())?,
                    None => vec![],
                };
                for e in new {
                    merge(&mut stored, e);
                }
                let bytes = encode(&stored)?;
                table.insert(user.as_str(), bytes.as_slice()).map_err(|e| self.fail(e))?;
            }
        }
        tx.commit().map_err(|e| self.fail(e))
    }

    fn events(&self, user: &str) -> Result<Vec<RawEvent>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = tx.open_table(USERS).map_err(|e| self.fail(e))?;
        let events = match table.get(user).map_err(|e| self.fail(e))? {
            Some(v) => decode(v.value(), user, &self.path.display())?,
            None => vec![],
        };
        Ok(events)
    }

    fn users(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = tx.open_table(USERS).map_err(|e| self.fail(e))?;
        table.len().map_err(|e| self.fail(e))
    }
}

/// The Redis store: each user's events under `PREFIX:user:KEY`, the set of users under
/// `PREFIX:users`.
pub struct Redis {
    client: redis::Client,
    prefix: String,
    /// Idle connections, reused (a connection serves one call at a time).
    idle: std::sync::Mutex<Vec<redis::Connection>>,
}

impl Redis {
    /// Connects to `url` (`redis://HOST:PORT/DB`); `prefix` namespaces the keys.
    pub fn open(url: &str, prefix: &str) -> Result<Redis, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("{url}: {e}")))?;
        let store = Redis { client, prefix: prefix.to_string(), idle: std::sync::Mutex::new(vec![]) };
        // Fails now, naming the address, rather than at the first request.
        store.with(|con| redis::cmd("PING").query::<String>(con).map(|_| ()))?;
        Ok(store)
    }

    fn key(&self, user: &str) -> String {
        format!("{}:user:{user}", self.prefix)
    }

    /// Runs `work` on an idle connection (or a new one), and keeps it for reuse if it worked.
    fn with<T>(&self, work: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        let fail = |e: redis::RedisError| StoreError(format!("redis: {e}"));
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut con = match idle {
            Some(c) => c,
            None => self.client.get_connection().map_err(fail)?,
        };
        let out = work(&mut con).map_err(fail)?;
        if let Ok(mut v) = self.idle.lock() {
            v.push(con);
        }
        Ok(out)
    }
}

impl Store for Redis {
    fn append(
        &self,
        events: Vec<(String, RawEvent)>,
        merge: &(dyn Fn(&mut Vec<RawEvent>, RawEvent) + Sync),
    ) -> Result<(), StoreError> {
        let groups = by_user(events);
        let keys: Vec<String> = groups.iter().map(|(u, _)| self.key(u)).collect();
        let users_key = format!("{}:users", self.prefix);
        // A user's events that cannot be read or written: nothing of the request is stored.
        let mut bad = None;
        self.with(|con| {
            redis::transaction(con, &keys, |con, pipe| {
                let stored: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(con)?;
                pipe.clear();
                for (((user, new), key), bytes) in groups.iter().zip(&keys).zip(&stored) {
                    let merged =
                        bytes.as_deref().map_or(Ok(vec![]), |b| decode(b, user, &"redis")).and_then(|mut list| {
                            // Cloned: a transaction that lost a race merges them again.
                            new.iter().for_each(|e| merge(&mut list, e.clone()));
                            encode(&list)
                        });
                    match merged {
                        Ok(bytes) => pipe.set(key, bytes).ignore().sadd(&users_key, user).ignore(),
                        Err(e) => {
                            bad = Some(e);
                            return Ok(Some(()));
                        }
                    };
                }
                pipe.query(con)
            })
        })?;
        bad.map_or(Ok(()), Err)
    }

    fn events(&self, user: &str) -> Result<Vec<RawEvent>, StoreError> {
        let bytes: Option<Vec<u8>> = self.with(|con| redis::cmd("GET").arg(self.key(user)).query(con))?;
        bytes.map_or(Ok(vec![]), |b| decode(&b, user, &"redis"))
    }

    fn users(&self) -> Result<u64, StoreError> {
        self.with(|con| redis::cmd("SCARD").arg(format!("{}:users", self.prefix)).query(con))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn raw(time: f64, item: &str) -> RawEvent {
        RawEvent { time, columns: BTreeMap::from([("item".to_string(), item.to_string())]) }
    }

    #[test]
    fn appended_events_survive_reopening_and_merge_per_user() {
        let dir = std::env::temp_dir().join(format!("recspec-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.redb");
        let push = |es: &mut Vec<RawEvent>, e: RawEvent| es.push(e);
        {
            let store = Embedded::open(&path).unwrap();
            assert_eq!(store.events("u1").unwrap(), vec![]);
            store.append(vec![("u1".into(), raw(1.0, "a")), ("u2".into(), raw(2.0, "b"))], &push).unwrap();
            store.append(vec![("u1".into(), raw(0.1 + 0.2, "c"))], &push).unwrap();
        }
        let store = Embedded::open(&path).unwrap();
        assert_eq!(store.events("u1").unwrap(), vec![raw(1.0, "a"), raw(0.1 + 0.2, "c")]);
        assert_eq!(store.events("u2").unwrap(), vec![raw(2.0, "b")]);
        assert_eq!(store.users().unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
