//! The catalog readers against real databases (a SQLite file; a PostgreSQL schema of
//! its own per test, skipped with a note when the server is unreachable) and the walk.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Executor as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sqlite::trigger_shape;
use super::*;
use crate::capability::db::DbGrant;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What is not granted, as `(need, granted)` lines, for readable assertions.
fn missing(effects: &ImpliedEffects, grant: &DbGrant) -> Vec<String> {
    effects
        .not_granted(grant)
        .iter()
        .map(|n| n.need.to_string())
        .collect()
}

async fn sqlite(schema: &str) -> (ImpliedEffects, TargetDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("target.db").display());
    let target = TargetDb::connect(&url).await.unwrap();
    target.run_script(schema).await.unwrap();
    let effects = ImpliedEffects::load(&target).await.unwrap();
    (effects, target, dir)
}

/// A schema of its own on the test server, first on the search path of every pooled
/// connection; dropped by [`PgScratch::drop_schema`].
struct PgScratch {
    target: TargetDb,
    admin: sqlx::PgPool,
    schema: String,
}

impl PgScratch {
    async fn new(sql: &str) -> Option<PgScratch> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = std::env::var("RUNBOOK_TEST_TARGET_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
        let options: PgConnectOptions = match url.parse() {
            Ok(o) => o,
            Err(e) => panic!("bad RUNBOOK_TEST_TARGET_URL: {e}"),
        };
        let admin = match PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("note: PostgreSQL unreachable ({e}); skipped");
                return None;
            }
        };
        let schema = format!(
            "implied_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            )))
            .await
            .unwrap();
        let path = schema.clone();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .after_connect(move |conn, _| {
                let path = path.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(format!("SET search_path TO {path}")))
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .unwrap();
        let target = TargetDb::Postgres(pool);
        target.run_script(sql).await.unwrap();
        Some(PgScratch {
            target,
            admin,
            schema,
        })
    }

    async fn effects(&self) -> ImpliedEffects {
        ImpliedEffects::load(&self.target).await.unwrap()
    }

    async fn drop_schema(self) {
        self.target.close().await;
        self.admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA {} CASCADE",
                self.schema
            )))
            .await
            .unwrap();
    }
}

const CHAIN: &str = "
CREATE TABLE parents (id INTEGER PRIMARY KEY);
CREATE TABLE kids (id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parents (id) ON DELETE CASCADE);
CREATE TABLE grandkids (id INTEGER PRIMARY KEY,
    kid_id INTEGER REFERENCES kids (id) ON DELETE CASCADE);
CREATE TABLE notes (id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parents (id) ON DELETE SET NULL ON UPDATE CASCADE);
CREATE TABLE strict_refs (id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parents (id) ON DELETE RESTRICT);
CREATE TABLE selfish (id INTEGER PRIMARY KEY,
    up INTEGER REFERENCES selfish (id) ON DELETE CASCADE);
";

fn check_chain(effects: &ImpliedEffects) {
    let delete = DbGrant {
        delete: set(&["parents"]),
        ..DbGrant::default()
    };
    let mut got = missing(effects, &delete);
    got.sort();
    assert_eq!(
        got,
        [
            "delete on table \"grandkids\"",
            "delete on table \"kids\"",
            "update on table \"notes\""
        ]
    );
    let needs = effects.not_granted(&delete);
    let grandkids = needs
        .iter()
        .find(|n| n.need.to_string().contains("grandkids"))
        .unwrap();
    assert_eq!(grandkids.source, "delete on \"parents\"");
    assert!(
        grandkids.reason.contains("ON DELETE CASCADE")
            && grandkids.reason.contains("reached through parents → kids"),
        "{}",
        grandkids.reason
    );
    assert_eq!(
        grandkids.help(),
        "`[steps.grants.db]` delete = [\"grandkids\"]"
    );

    // Granting the whole chain leaves nothing; RESTRICT only reads.
    let full = DbGrant {
        delete: set(&["parents", "kids", "grandkids"]),
        update: set(&["notes"]),
        ..DbGrant::default()
    };
    assert_eq!(missing(effects, &full), Vec::<String>::new());
    assert!(
        effects
            .implied_by(&full)
            .iter()
            .all(|n| !n.need.to_string().contains("strict_refs"))
    );

    // ON UPDATE CASCADE: an update of parents updates notes.
    let update = DbGrant {
        update: set(&["parents"]),
        ..DbGrant::default()
    };
    assert_eq!(missing(effects, &update), ["update on table \"notes\""]);

    // Inserts imply nothing here; a self-reference ends.
    let other = DbGrant {
        insert: set(&["parents", "kids"]),
        delete: set(&["selfish"]),
        ..DbGrant::default()
    };
    assert_eq!(missing(effects, &other), Vec::<String>::new());
}

#[tokio::test]
async fn sqlite_cascade_chains_and_set_null() {
    let (effects, _target, _dir) = sqlite(CHAIN).await;
    check_chain(&effects);
}

#[tokio::test]
async fn postgres_cascade_chains_and_set_null() {
    let Some(db) = PgScratch::new(CHAIN).await else {
        return;
    };
    check_chain(&db.effects().await);
    db.drop_schema().await;
}

#[tokio::test]
async fn sqlite_triggers_and_instead_of_views() {
    let (effects, _target, _dir) = sqlite(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER);
         CREATE TABLE changes (id INTEGER PRIMARY KEY, invoice_id INTEGER);
         CREATE TRIGGER audit_invoice_change AFTER UPDATE OF amount ON invoices
         BEGIN INSERT INTO changes (invoice_id) VALUES (new.id); END;
         CREATE VIEW open_invoices AS SELECT * FROM invoices WHERE amount > 0;
         CREATE TRIGGER \"close on delete\" INSTEAD OF DELETE ON open_invoices
         BEGIN UPDATE invoices SET amount = 0 WHERE id = old.id; END;",
    )
    .await;
    let update = DbGrant {
        update: set(&["invoices"]),
        insert: set(&["invoices"]),
        ..DbGrant::default()
    };
    assert_eq!(
        missing(&effects, &update),
        ["trigger \"audit_invoice_change\" on \"invoices\""]
    );
    let accepted = DbGrant {
        triggers: set(&["audit_invoice_change"]),
        ..update
    };
    assert_eq!(missing(&effects, &accepted), Vec::<String>::new());

    let view = DbGrant {
        delete: set(&["open_invoices"]),
        ..DbGrant::default()
    };
    let needs = effects.not_granted(&view);
    assert_eq!(needs.len(), 1, "{needs:?}");
    assert_eq!(
        needs[0].need,
        Need::Trigger {
            table: "open_invoices".into(),
            name: "close on delete".into()
        }
    );
    assert!(needs[0].reason.contains("INSTEAD OF DELETE"));
}

const PG_OBJECTS: &str = "
CREATE TABLE invoices (id BIGINT PRIMARY KEY, amount BIGINT);
CREATE TABLE changes (id BIGSERIAL PRIMARY KEY, invoice_id BIGINT);
CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO changes (invoice_id) VALUES (OLD.id); RETURN OLD; END $$;
CREATE TRIGGER audit_invoice_change AFTER DELETE ON invoices
  FOR EACH ROW EXECUTE FUNCTION log_change();
CREATE TABLE disabled_t (id BIGINT);
CREATE TRIGGER off AFTER DELETE ON disabled_t FOR EACH ROW EXECUTE FUNCTION log_change();
ALTER TABLE disabled_t DISABLE TRIGGER off;
CREATE VIEW big_invoices AS SELECT * FROM invoices WHERE amount > 1000;
CREATE VIEW guarded AS SELECT * FROM invoices;
CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER guard_delete INSTEAD OF DELETE ON guarded
  FOR EACH ROW EXECUTE FUNCTION guard();
CREATE TABLE drafts (id BIGINT);
CREATE RULE copy_drafts AS ON INSERT TO drafts DO ALSO
  INSERT INTO changes (invoice_id) VALUES (NEW.id);
CREATE TABLE readings (id BIGINT, at DATE) PARTITION BY RANGE (at);
CREATE TABLE readings_2026 PARTITION OF readings
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TRIGGER reading_gone AFTER DELETE ON readings_2026
  FOR EACH ROW EXECUTE FUNCTION log_change();
";

#[tokio::test]
async fn postgres_triggers_views_rules_and_partitions() {
    let Some(db) = PgScratch::new(PG_OBJECTS).await else {
        return;
    };
    let effects = db.effects().await;

    // A trigger fires: accepted by name only. A disabled one does not count.
    let delete = DbGrant {
        delete: set(&["invoices", "disabled_t"]),
        ..DbGrant::default()
    };
    assert_eq!(
        missing(&effects, &delete),
        ["trigger \"audit_invoice_change\" on \"invoices\""]
    );
    let accepted = DbGrant {
        triggers: set(&["audit_invoice_change"]),
        ..delete.clone()
    };
    assert_eq!(missing(&effects, &accepted), Vec::<String>::new());

    // An auto-updatable view writes its base table (and fires the base's triggers).
    let view = DbGrant {
        delete: set(&["big_invoices"]),
        ..DbGrant::default()
    };
    let mut got = missing(&effects, &view);
    got.sort();
    assert_eq!(
        got,
        [
            "delete on table \"invoices\"",
            "trigger \"audit_invoice_change\" on \"invoices\""
        ]
    );
    // An INSTEAD OF trigger replaces the write: only the trigger is needed.
    let guarded = DbGrant {
        delete: set(&["guarded"]),
        ..DbGrant::default()
    };
    assert_eq!(
        missing(&effects, &guarded),
        ["trigger \"guard_delete\" on \"guarded\""]
    );

    // A rule is accepted by name under `rules`.
    let insert = DbGrant {
        insert: set(&["drafts"]),
        ..DbGrant::default()
    };
    assert_eq!(
        missing(&effects, &insert),
        ["rule \"copy_drafts\" on \"drafts\""]
    );
    let ruled = DbGrant {
        rules: set(&["copy_drafts"]),
        ..insert
    };
    assert_eq!(missing(&effects, &ruled), Vec::<String>::new());

    // The parent's grant covers its partitions; the partition's trigger still counts.
    let parted = DbGrant {
        delete: set(&["readings"]),
        ..DbGrant::default()
    };
    let needs = effects.implied_by(&parted);
    let partition = needs
        .iter()
        .find(|n| n.need.to_string() == "delete on table \"readings_2026\"")
        .unwrap();
    assert!(partition.granted && partition.reason.contains("partition"));
    assert_eq!(
        missing(&effects, &parted),
        ["trigger \"reading_gone\" on \"readings_2026\""]
    );

    // A schema-qualified grant resolves to the same table.
    let qualified = DbGrant {
        delete: set(&[&format!("{}.invoices", db.schema)]),
        ..DbGrant::default()
    };
    assert_eq!(
        missing(&effects, &qualified),
        ["trigger \"audit_invoice_change\" on \"invoices\""]
    );
    db.drop_schema().await;
}

#[test]
fn sqlite_trigger_text_is_read_by_tokens() {
    let cases = [
        (
            "CREATE TRIGGER t AFTER DELETE ON x BEGIN SELECT 1; END",
            Event::Delete,
            false,
        ),
        (
            "create temp trigger if not exists main.t before insert on x begin select 1; end",
            Event::Insert,
            false,
        ),
        (
            "CREATE TRIGGER \"delete\" UPDATE OF a ON x BEGIN SELECT 1; END",
            Event::Update,
            false,
        ),
        (
            "CREATE TRIGGER [insert] INSTEAD OF DELETE ON v BEGIN SELECT 1; END",
            Event::Delete,
            true,
        ),
    ];
    for (sql, event, instead) in cases {
        assert_eq!(trigger_shape(sql), ([event].into(), instead), "{sql}");
    }
    // Unreadable text fires on everything.
    assert_eq!(trigger_shape("CREATE TRIGGER").0.len(), 3);
}
