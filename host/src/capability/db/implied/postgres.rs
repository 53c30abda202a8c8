//! PostgreSQL's catalog, read in one round trip: the connection's search path, the
//! relations of every user schema, foreign keys with a writing action
//! (`pg_constraint.confdeltype`/`confupdtype`), triggers (`pg_trigger`, internal ones —
//! the foreign keys' own — and disabled ones left out), non-SELECT rules (`pg_rewrite`),
//! the relations each view reads (its `_RETURN` rule's dependencies) and partitions and
//! inheritance children (`pg_inherits`).

use std::collections::BTreeSet;

use super::{
    Event, FkAction, ImpliedError, RawCatalog, RawForeignKey, RawRule, RawTrigger, text_rows,
};
use crate::target::StepTransaction;

/// Every row is `(tag, c1..c7)`, all text, so one statement answers everything.
const CATALOG: &str = r#"
WITH rels AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
)
SELECT 'path', s::text, o::text, NULL, NULL, NULL, NULL, NULL
  FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, o)
UNION ALL
SELECT 'rel', schema, name, NULL, NULL, NULL, NULL, NULL FROM rels
UNION ALL
SELECT 'fk', ch.schema, ch.name,
       (SELECT string_agg(a.attname::text, ', ' ORDER BY k.i)
          FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
       pa.schema, pa.name, con.confdeltype::text, con.confupdtype::text
  FROM pg_constraint con
  JOIN rels ch ON ch.oid = con.conrelid
  JOIN rels pa ON pa.oid = con.confrelid
 WHERE con.contype = 'f'
   AND (con.confdeltype IN ('c', 'n', 'd') OR con.confupdtype IN ('c', 'n', 'd'))
UNION ALL
SELECT 'trigger', r.schema, r.name, t.tgname::text, t.tgtype::text, NULL, NULL, NULL
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
UNION ALL
SELECT 'rule', r.schema, r.name, w.rulename::text, w.ev_type::text, w.is_instead::text,
       (w.ev_qual::text = '<>')::text, NULL
  FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
 WHERE w.rulename <> '_RETURN' AND w.ev_type IN ('2', '3', '4') AND w.ev_enabled <> 'D'
UNION ALL
SELECT DISTINCT 'view', v.schema, v.name, b.schema, b.name, NULL, NULL, NULL
  FROM pg_rewrite w
  JOIN rels v ON v.oid = w.ev_class AND v.relkind = 'v'
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> w.ev_class
  JOIN rels b ON b.oid = d.refobjid AND b.relkind IN ('r', 'p', 'v', 'f')
 WHERE w.rulename = '_RETURN'
UNION ALL
SELECT 'inherits', p.schema, p.name, c.schema, c.name, NULL, NULL, NULL
  FROM pg_inherits i
  JOIN rels p ON p.oid = i.inhparent
  JOIN rels c ON c.oid = i.inhrelid
"#;

/// `pg_trigger.tgtype` bits (`catalog/pg_trigger.h`).
const TRIGGER_INSERT: i64 = 1 << 2;
const TRIGGER_DELETE: i64 = 1 << 3;
const TRIGGER_UPDATE: i64 = 1 << 4;
const TRIGGER_TRUNCATE: i64 = 1 << 5;
const TRIGGER_INSTEAD: i64 = 1 << 6;

pub(super) async fn read(tx: &mut StepTransaction) -> Result<RawCatalog, ImpliedError> {
    let mut raw = RawCatalog::default();
    let mut path = Vec::new();
    for row in text_rows(tx, CATALOG).await? {
        let [tag, c1, c2, c3, c4, c5, c6, c7] = <[String; 8]>::try_from(row)
            .map_err(|row| ImpliedError::Shape(format!("catalog row of {} columns", row.len())))?;
        match tag.as_str() {
            "path" => path.push((c2.parse::<i64>().unwrap_or(i64::MAX), c1)),
            "rel" => raw.relations.push((c1, c2)),
            "fk" => raw.foreign_keys.push(RawForeignKey {
                child: (c1, c2),
                columns: c3,
                parent: (c4, c5),
                on_delete: FkAction::parse(&c6),
                on_update: FkAction::parse(&c7),
            }),
            "trigger" => {
                let bits: i64 = c4
                    .parse()
                    .map_err(|_| ImpliedError::Shape(format!("trigger type {c4:?}")))?;
                let events = [
                    (TRIGGER_INSERT, Event::Insert),
                    (TRIGGER_DELETE, Event::Delete),
                    (TRIGGER_UPDATE, Event::Update),
                    (TRIGGER_TRUNCATE, Event::Truncate),
                ]
                .into_iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|(_, event)| event)
                .collect::<BTreeSet<_>>();
                raw.triggers.push(RawTrigger {
                    table: (c1, c2),
                    name: c3,
                    events,
                    instead: bits & TRIGGER_INSTEAD != 0,
                });
            }
            "rule" => {
                let event = match c4.as_str() {
                    "2" => Event::Update,
                    "3" => Event::Insert,
                    "4" => Event::Delete,
                    other => return Err(ImpliedError::Shape(format!("rule event {other:?}"))),
                };
                raw.rules.push(RawRule {
                    table: (c1, c2),
                    name: c3,
                    event,
                    // Only an unconditional DO INSTEAD replaces the write itself.
                    instead: c5 == "true" && c6 == "true",
                });
            }
            "view" => raw.view_bases.push(((c1, c2), (c3, c4))),
            "inherits" => raw.inherits.push(((c1, c2), (c3, c4))),
            other => return Err(ImpliedError::Shape(format!("catalog row tag {other:?}"))),
        }
    }
    path.sort();
    raw.search_path = path.into_iter().map(|(_, schema)| schema).collect();
    Ok(raw)
}
