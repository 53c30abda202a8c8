//! SQLite's catalog, read in one statement: tables and views of the main schema
//! (`sqlite_master`), foreign keys with a writing action (`pragma_foreign_key_list`) and
//! triggers, whose event and timing are read from their `CREATE TRIGGER` text. SQLite
//! views are read-only unless an `INSTEAD OF` trigger serves them, so no view writes a
//! base table on its own; there are no rules and no partitions.

use std::collections::BTreeSet;

use sqlparser::dialect::SQLiteDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::{Event, FkAction, ImpliedError, RawCatalog, RawForeignKey, RawTrigger, text_rows};
use crate::target::StepTransaction;

/// Every row is `(tag, c1..c4)`, all text.
const CATALOG: &str = r#"
SELECT 'rel', name, NULL, NULL, NULL FROM sqlite_master
 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
UNION ALL
SELECT 'fk', child, parent, group_concat(col, ', '), max(on_update) || '|' || max(on_delete)
  FROM (SELECT m.name AS child, f.id AS id, f."table" AS parent, f."from" AS col,
               f.on_update AS on_update, f.on_delete AS on_delete
          FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
         WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq)
 GROUP BY child, id
UNION ALL
SELECT 'trigger', tbl_name, name, sql, NULL FROM sqlite_master WHERE type = 'trigger'
"#;

const MAIN: &str = "main";

pub(super) async fn read(tx: &mut StepTransaction) -> Result<RawCatalog, ImpliedError> {
    let mut raw = RawCatalog {
        search_path: vec![MAIN.to_string()],
        ..RawCatalog::default()
    };
    let main = |name: String| (MAIN.to_string(), name);
    for row in text_rows(tx, CATALOG).await? {
        let [tag, c1, c2, c3, c4] = <[String; 5]>::try_from(row)
            .map_err(|row| ImpliedError::Shape(format!("catalog row of {} columns", row.len())))?;
        match tag.as_str() {
            "rel" => raw.relations.push(main(c1)),
            "fk" => {
                let (on_update, on_delete) = c4.split_once('|').unwrap_or((&c4, ""));
                raw.foreign_keys.push(RawForeignKey {
                    on_update: FkAction::parse(on_update),
                    on_delete: FkAction::parse(on_delete),
                    child: main(c1),
                    columns: c3,
                    parent: main(c2),
                });
            }
            "trigger" => {
                let (events, instead) = trigger_shape(&c3);
                raw.triggers.push(RawTrigger {
                    table: main(c1),
                    name: c2,
                    events,
                    instead,
                });
            }
            other => return Err(ImpliedError::Shape(format!("catalog row tag {other:?}"))),
        }
    }
    Ok(raw)
}

/// The event a `CREATE TRIGGER` statement fires on and whether it is `INSTEAD OF`,
/// read from its tokens (quoted names never match a keyword). Text that cannot be read
/// fires on every event: a trigger is never missed for being written oddly.
pub(super) fn trigger_shape(sql: &str) -> (BTreeSet<Event>, bool) {
    let every = || {
        [Event::Insert, Event::Update, Event::Delete]
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    let Ok(tokens) = Tokenizer::new(&SQLiteDialect {}, sql).tokenize() else {
        return (every(), false);
    };
    let significant: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let words: Vec<Option<String>> = significant
        .iter()
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let is = |i: usize, word: &str| words.get(i).and_then(Option::as_deref) == Some(word);
    let Some(mut i) = (0..words.len()).find(|&i| is(i, "TRIGGER")) else {
        return (every(), false);
    };
    i += 1;
    if is(i, "IF") && is(i + 1, "NOT") && is(i + 2, "EXISTS") {
        i += 3;
    }
    // The trigger's name, perhaps schema-qualified: `name` or `schema . name`.
    i += 1;
    if matches!(significant.get(i), Some(Token::Period)) {
        i += 2;
    }
    let mut instead = false;
    for word in words.iter().skip(i) {
        match word.as_deref() {
            Some("INSTEAD") => instead = true,
            Some("DELETE") => return ([Event::Delete].into(), instead),
            Some("INSERT") => return ([Event::Insert].into(), instead),
            Some("UPDATE") => return ([Event::Update].into(), instead),
            Some("ON") => break,
            _ => {}
        }
    }
    (every(), instead)
}
