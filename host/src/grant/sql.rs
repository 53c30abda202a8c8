//! SQL statement analysis for database grants: which tables a statement touches, and how.
//!
//! Plugins hand the host SQL text; before it runs, [`analyze`] parses it with `sqlparser`
//! and reports every `(kind, table)` pair the statement needs, so the step's grant can be
//! checked against it. This is a security boundary, so everything here denies by default:
//! only plain queries, INSERT/UPDATE/DELETE and a few table DDL statements are accepted, and
//! every other statement, syntax extension or construct the analysis cannot account for is
//! an error rather than a guess.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use sqlparser::ast::{
    self, AlterTableOperation, CascadeOption, ColumnDef, ColumnOption, CreateTableLikeKind,
    DropBehavior, Expr, FromTable, Ident, ObjectName, ObjectNamePart, ObjectType, OnConflictAction,
    OnInsert, Query, RenameTableNameKind, Select, SetExpr, SqliteOnConflict, Statement,
    TableConstraint, TableFactor, TableObject, TableWithJoins, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// How a statement uses a table; also the grant category that must list the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
}

impl StatementKind {
    pub const ALL: [StatementKind; 5] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Ddl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Ddl => "ddl",
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the lowercase [`StatementKind`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown statement kind `{0}` (expected select, insert, update, delete or ddl)")]
pub struct UnknownStatementKind(pub String);

impl FromStr for StatementKind {
    type Err = UnknownStatementKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatementKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownStatementKind(s.to_string()))
    }
}

/// The database a statement is written for; decides parsing and identifier case rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Postgres,
    Sqlite,
}

/// What one statement needs from the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlAccess {
    /// The kind of the top-level statement (a `WITH ... DELETE` is Delete; `SELECT` is Select).
    pub statement: StatementKind,
    /// Every (kind, table) pair the statement needs, table names normalized (see below).
    ///
    /// Unquoted identifiers are ASCII-lowercased, as Postgres folds them; quoted ones keep
    /// their case under Postgres. SQLite compares all identifiers case-insensitively, so
    /// under [`SqlDialect::Sqlite`] quoted identifiers are lowercased too. Parts of a
    /// qualified name are joined with `.`; a part that itself contains `.` or `"` is written
    /// double-quoted so that no two different tables share a normalized name.
    pub needs: BTreeSet<(StatementKind, String)>,
    /// True when the statement can return rows (SELECT, or a write with RETURNING).
    pub returns_rows: bool,
}

impl SqlAccess {
    pub fn requirements(&self) -> impl Iterator<Item = (StatementKind, &str)> + '_ {
        self.needs
            .iter()
            .map(|(kind, table)| (*kind, table.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("SQL does not parse: {0}")]
    Parse(String),
    #[error("exactly one statement per call is allowed, found {0}")]
    StatementCount(usize),
    #[error("{0} statements are not allowed")]
    Unsupported(String),
    #[error("function `{0}` is not allowed")]
    ForbiddenFunction(String),
}

/// Function name prefixes that reach past the granted tables: server files and settings,
/// other sessions, large objects, other databases, sequences shared by every writer, or
/// SQL text that the function runs itself (which the analysis cannot see).
const FORBIDDEN_FUNCTION_PREFIXES: &[&str] = &[
    "pg_",
    "lo_",
    "dblink",
    "query_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "cursor_to_xml",
    "crosstab",
    "pragma_",
];

/// Exact function names denied for the same reasons as [`FORBIDDEN_FUNCTION_PREFIXES`].
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "set_config",
    "current_setting",
    "setval",
    "loread",
    "lowrite",
    "ts_stat",
    "ts_rewrite",
    "connectby",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "fsdir",
    "zipfile",
    "sqlar_compress",
    "sqlar_uncompress",
];

/// SQLite table-valued functions that are not tables. SQLite lets any virtual table be
/// called like a function (`FROM docs_fts('needle')`), so under SQLite every other
/// `name(...)` in FROM is read as the table it names.
const SQLITE_TABLE_FUNCTIONS: &[&str] = &[
    "json_each",
    "json_tree",
    "jsonb_each",
    "jsonb_tree",
    "generate_series",
];

/// Largest nesting estimate (see [`nesting_estimate`]) accepted before parsing.
///
/// The parser builds operator chains (`a + b + ...`, `x OR y OR ...`, `... UNION ...`) in
/// a loop, so their depth is not bounded by its recursion limit, while walking and
/// dropping the tree recurse once per level. Unchecked, a long chain overflows the stack
/// and aborts the host (even on a parse error, when the parser drops what it built).
/// At this bound analysis needs well under 1 MiB of stack in a debug build.
const MAX_NESTING: usize = 1000;

/// Analyzes one SQL statement: rejects anything outside the allowed statement kinds and
/// reports every table it needs.
pub fn analyze(sql: &str, dialect: SqlDialect) -> Result<SqlAccess, SqlError> {
    // sqlparser is a large parser fed untrusted text; a bug there must deny the statement,
    // not take the host down.
    std::panic::catch_unwind(|| analyze_unguarded(sql, dialect)).unwrap_or_else(|_| {
        Err(SqlError::Parse(
            "the SQL parser failed on this input".to_string(),
        ))
    })
}

fn analyze_unguarded(sql: &str, dialect: SqlDialect) -> Result<SqlAccess, SqlError> {
    let parser_dialect: &dyn Dialect = match dialect {
        SqlDialect::Postgres => &PostgreSqlDialect {},
        SqlDialect::Sqlite => &SQLiteDialect {},
    };
    let tokens = Tokenizer::new(parser_dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    check_tokens(&tokens, dialect)?;
    if nesting_estimate(&tokens) > MAX_NESTING {
        return Err(SqlError::Parse(format!(
            "statement is nested too deeply (more than {MAX_NESTING} levels)"
        )));
    }
    let statements = Parser::new(parser_dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    let [statement] = statements.as_slice() else {
        return Err(SqlError::StatementCount(statements.len()));
    };

    let mut collector = Collector::new(dialect);
    if let ControlFlow::Break(err) = statement.visit(&mut collector) {
        return Err(*err);
    }
    let (mut kind, mut returns_rows) = top_level_kind(statement);
    if collector.selects_into && kind == StatementKind::Select {
        kind = StatementKind::Ddl;
        returns_rows = false;
    }
    Ok(SqlAccess {
        statement: kind,
        needs: collector.needs,
        returns_rows,
    })
}

/// Rejects token sequences that the database reads differently from sqlparser, where the
/// difference could hide a table or function from the analysis.
fn check_tokens(tokens: &[TokenWithSpan], dialect: SqlDialect) -> Result<(), SqlError> {
    if dialect != SqlDialect::Postgres {
        return Ok(());
    }
    let is_bare_u = |token: &Token| match token {
        Token::Word(word) => word.quote_style.is_none() && word.value.eq_ignore_ascii_case("u"),
        _ => false,
    };
    let is_quoted = |token: &Token| match token {
        Token::Word(word) => word.quote_style.is_some(),
        _ => false,
    };
    for window in tokens.windows(3) {
        // Postgres reads `U&"pg\005fsleep"` as the identifier pg_sleep; sqlparser sees
        // `U & "pg\005fsleep"`, so a forbidden function could pass under an escaped name.
        if let [u, amp, quoted] = window
            && is_bare_u(&u.token)
            && amp.token == Token::Ampersand
            && is_quoted(&quoted.token)
        {
            return Err(SqlError::Parse(
                "Unicode-escaped identifiers (U&\"...\") are not supported".to_string(),
            ));
        }
    }
    for token in tokens {
        // sqlparser accepts `$1$...$1$` as a dollar-quoted string; Postgres reads `$1` as a
        // parameter and the text after it as SQL.
        if let Token::DollarQuotedString(quoted) = &token.token
            && quoted
                .tag
                .as_deref()
                .is_some_and(|tag| tag.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(SqlError::Parse(
                "dollar-quote tags must not start with a digit".to_string(),
            ));
        }
    }
    Ok(())
}

/// An upper bound on how deeply the parser can nest the tree built from these tokens.
///
/// Within one bracket level, a node can only sit below nodes made from operator tokens
/// (symbols and keywords) of its own comma-separated item, below its bracket, and below
/// the UNION/INTERSECT/EXCEPT chain of that level (the one chain that spans commas). So the
/// bound is, per level: 1 + set operations + the worst item's operator count plus the
/// deepest bracket group inside it. Identifiers, literals and commas do not count, which
/// keeps long VALUES and IN lists cheap; keywords count even where they are not operators.
fn nesting_estimate(tokens: &[TokenWithSpan]) -> usize {
    #[derive(Default)]
    struct Level {
        set_operations: usize,
        worst_item: usize,
        item_operators: usize,
        item_deepest_group: usize,
    }
    impl Level {
        fn end_item(&mut self) {
            self.worst_item = self
                .worst_item
                .max(self.item_operators + self.item_deepest_group);
            self.item_operators = 0;
            self.item_deepest_group = 0;
        }
        fn depth(mut self) -> usize {
            self.end_item();
            1 + self.set_operations + self.worst_item
        }
    }

    let mut current = Level::default();
    let mut enclosing: Vec<Level> = Vec::new();
    for token in tokens {
        match &token.token {
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => {}
            Token::Word(word) if word.keyword == Keyword::NoKeyword => {}
            Token::Word(word)
                if matches!(
                    word.keyword,
                    Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS
                ) =>
            {
                current.set_operations += 1;
            }
            Token::Comma | Token::SemiColon => current.end_item(),
            Token::LParen | Token::LBracket | Token::LBrace => {
                // Brackets can follow each other in a chain (`int[][]`), so each counts.
                current.item_operators += 1;
                enclosing.push(std::mem::take(&mut current));
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                // An unbalanced closer is a parse error; the outermost level stays.
                if let Some(outer) = enclosing.pop() {
                    let depth = std::mem::replace(&mut current, outer).depth();
                    current.item_deepest_group = current.item_deepest_group.max(depth);
                }
            }
            _ => current.item_operators += 1,
        }
    }
    // Unclosed brackets are a parse error, but the parser builds (and drops) their
    // contents first.
    let mut depth = current.depth();
    while let Some(mut outer) = enclosing.pop() {
        outer.item_deepest_group = outer.item_deepest_group.max(depth);
        depth = outer.depth();
    }
    depth
}

/// The kind of the outermost statement and whether it returns rows. Only called once the
/// collector has accepted the statement.
fn top_level_kind(statement: &Statement) -> (StatementKind, bool) {
    match statement {
        Statement::Query(query) => query_kind(query),
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => write_kind(statement),
        _ => (StatementKind::Ddl, false),
    }
}

fn query_kind(query: &Query) -> (StatementKind, bool) {
    match query.body.as_ref() {
        SetExpr::Query(inner) => query_kind(inner),
        SetExpr::Insert(write) | SetExpr::Update(write) | SetExpr::Delete(write) => {
            write_kind(write)
        }
        _ => (StatementKind::Select, true),
    }
}

fn write_kind(statement: &Statement) -> (StatementKind, bool) {
    match statement {
        Statement::Insert(insert) => (StatementKind::Insert, insert.returning.is_some()),
        Statement::Update(update) => (StatementKind::Update, update.returning.is_some()),
        Statement::Delete(delete) => (StatementKind::Delete, delete.returning.is_some()),
        _ => (StatementKind::Select, true),
    }
}

type Flow<T = ()> = ControlFlow<Box<SqlError>, T>;

fn deny<T>(err: SqlError) -> Flow<T> {
    ControlFlow::Break(Box::new(err))
}

fn unsupported<T>(what: impl Into<String>) -> Flow<T> {
    deny(SqlError::Unsupported(what.into()))
}

/// Walks the whole statement. Every table name sqlparser marks as a relation is a read,
/// unless it was first recognized as a write target, a table function or a CTE in scope.
/// Starting from "everything is a read" means a construct this code does not know about
/// can only over-report, never hide a table.
struct Collector {
    dialect: SqlDialect,
    needs: BTreeSet<(StatementKind, String)>,
    /// Names already accounted for (write targets, table functions), by address: the
    /// same text can be a write target in one place and a read in another.
    handled: HashSet<*const ObjectName>,
    /// CTE names each CTE body may refer to, registered by the enclosing query before the
    /// body is visited. Non-recursive CTEs see only the ones defined before them.
    cte_bodies: HashMap<*const Query, Vec<String>>,
    /// CTE names in scope, one entry per query being visited.
    scopes: Vec<Vec<String>>,
    statement_depth: usize,
    selects_into: bool,
}

impl Collector {
    fn new(dialect: SqlDialect) -> Self {
        Collector {
            dialect,
            needs: BTreeSet::new(),
            handled: HashSet::new(),
            cte_bodies: HashMap::new(),
            scopes: Vec::new(),
            statement_depth: 0,
            selects_into: false,
        }
    }

    fn ident(&self, ident: &Ident) -> String {
        let folded = match (self.dialect, ident.quote_style) {
            // Postgres folds unquoted names, and only ASCII letters in UTF-8 databases;
            // folding more would let a grant on `ä` cover a different table `Ä`.
            (SqlDialect::Postgres, Some(_)) => ident.value.clone(),
            _ => ident.value.to_ascii_lowercase(),
        };
        if folded.is_empty() || folded.contains(['.', '"']) {
            format!("\"{}\"", folded.replace('"', "\"\""))
        } else {
            folded
        }
    }

    fn name(&self, name: &ObjectName) -> Flow<String> {
        // sqlparser reads `FROM ONLY t` as a table named `only` aliased `t`; the database
        // reads table `t`.
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice()
            && ident.quote_style.is_none()
            && ident.value.eq_ignore_ascii_case("only")
        {
            return deny(SqlError::Parse(
                "`ONLY <table>` is not supported".to_string(),
            ));
        }
        let mut parts = Vec::with_capacity(name.0.len());
        for part in &name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => parts.push(self.ident(ident)),
                ObjectNamePart::Function(_) => return unsupported("computed table name"),
            }
        }
        ControlFlow::Continue(parts.join("."))
    }

    fn need(&mut self, kind: StatementKind, name: &ObjectName) -> Flow {
        self.handled.insert(name);
        let table = self.name(name)?;
        self.needs.insert((kind, table));
        ControlFlow::Continue(())
    }

    fn function(&self, name: &ObjectName) -> Flow {
        let forbidden = match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => {
                let lower = ident.value.to_ascii_lowercase();
                FORBIDDEN_FUNCTION_PREFIXES
                    .iter()
                    .any(|prefix| lower.starts_with(prefix))
                    || FORBIDDEN_FUNCTIONS.contains(&lower.as_str())
            }
            Some(ObjectNamePart::Function(_)) => true,
            None => false,
        };
        if forbidden {
            deny(SqlError::ForbiddenFunction(name.to_string()))
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Whether `name(...)` in FROM calls a function rather than reading a table.
    fn is_table_function(&self, name: &ObjectName) -> bool {
        match (self.dialect, name.0.as_slice()) {
            (SqlDialect::Postgres, _) => true,
            (SqlDialect::Sqlite, [ObjectNamePart::Identifier(ident)]) => {
                SQLITE_TABLE_FUNCTIONS.contains(&self.ident(ident).as_str())
            }
            (SqlDialect::Sqlite, _) => false,
        }
    }

    fn insert(&mut self, insert: &ast::Insert) -> Flow {
        // Hive, ClickHouse, MSSQL and Snowflake extensions: none is valid Postgres or
        // SQLite, and some write to tables other than the target.
        if insert.overwrite
            || insert.partitioned.is_some()
            || insert.output.is_some()
            || insert.settings.is_some()
            || insert.format_clause.is_some()
            || insert.multi_table_insert_type.is_some()
            || !insert.multi_table_into_clauses.is_empty()
            || !insert.multi_table_when_clauses.is_empty()
            || insert.multi_table_else_clause.is_some()
        {
            return unsupported("non-standard INSERT");
        }
        let TableObject::TableName(name) = &insert.table else {
            return unsupported("INSERT INTO FUNCTION");
        };
        // Ends the host's transaction on a conflict, like a ROLLBACK statement would.
        if insert.or == Some(SqliteOnConflict::Rollback) {
            return unsupported("INSERT OR ROLLBACK");
        }
        self.need(StatementKind::Insert, name)?;
        // REPLACE deletes the conflicting rows before inserting.
        if insert.replace_into || insert.or == Some(SqliteOnConflict::Replace) {
            self.need(StatementKind::Delete, name)?;
        }
        // An upsert rewrites existing rows: an insert-only grant must not allow that.
        let upserts = match &insert.on {
            Some(OnInsert::OnConflict(conflict)) => {
                matches!(conflict.action, OnConflictAction::DoUpdate(_))
            }
            Some(OnInsert::DuplicateKeyUpdate(_)) => true,
            _ => false,
        };
        if upserts {
            self.need(StatementKind::Update, name)?;
        }
        ControlFlow::Continue(())
    }

    fn update(&mut self, update: &ast::Update) -> Flow {
        if update.output.is_some() {
            return unsupported("UPDATE ... OUTPUT");
        }
        let TableWithJoins { relation, joins } = &update.table;
        let TableFactor::Table {
            name, args: None, ..
        } = relation
        else {
            return unsupported("UPDATE of a non-table");
        };
        // MySQL's multi-table UPDATE can write to any joined table.
        if !joins.is_empty() {
            return unsupported("UPDATE ... JOIN");
        }
        self.need(StatementKind::Update, name)?;
        match update.or {
            Some(SqliteOnConflict::Replace) => self.need(StatementKind::Delete, name),
            Some(SqliteOnConflict::Rollback) => unsupported("UPDATE OR ROLLBACK"),
            _ => ControlFlow::Continue(()),
        }
    }

    fn delete(&mut self, delete: &ast::Delete) -> Flow {
        if delete.output.is_some() {
            return unsupported("DELETE ... OUTPUT");
        }
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
        // MySQL's multi-table DELETE deletes from every listed table.
        let [
            TableWithJoins {
                relation:
                    TableFactor::Table {
                        name, args: None, ..
                    },
                joins,
            },
        ] = from.as_slice()
        else {
            return unsupported("multi-table DELETE");
        };
        if !joins.is_empty() || !delete.tables.is_empty() {
            return unsupported("multi-table DELETE");
        }
        self.need(StatementKind::Delete, name)
    }

    fn ddl(&mut self, statement: &Statement) -> Flow {
        match statement {
            Statement::CreateTable(create) => self.create_table(create),
            Statement::CreateIndex(index) => self.need(StatementKind::Ddl, &index.table_name),
            Statement::AlterTable(alter) => self.alter_table(alter),
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::Index,
                names,
                cascade,
                table,
                ..
            } => {
                // CASCADE also drops views and constraints that belong to other tables.
                if *cascade {
                    return unsupported("DROP ... CASCADE");
                }
                // DROP INDEX names the index, not its table: the index name is the target.
                for name in names.iter().chain(table) {
                    self.need(StatementKind::Ddl, name)?;
                }
                ControlFlow::Continue(())
            }
            Statement::Truncate(truncate) => {
                // CASCADE also empties every table that references these.
                if truncate.cascade == Some(CascadeOption::Cascade) {
                    return unsupported("TRUNCATE ... CASCADE");
                }
                for target in &truncate.table_names {
                    self.need(StatementKind::Ddl, &target.name)?;
                }
                ControlFlow::Continue(())
            }
            other => unsupported(statement_name(other)),
        }
    }

    fn create_table(&mut self, create: &ast::CreateTable) -> Flow {
        self.need(StatementKind::Ddl, &create.name)?;
        // A partition or child table changes what the parent holds: DDL on the parent.
        for parent in create
            .partition_of
            .iter()
            .chain(create.inherits.iter().flatten())
        {
            self.need(StatementKind::Ddl, parent)?;
        }
        // LIKE copies another table's definition, CLONE its data.
        let like = create.like.as_ref().map(|like| match like {
            CreateTableLikeKind::Parenthesized(like) | CreateTableLikeKind::Plain(like) => {
                &like.name
            }
        });
        for source in like.into_iter().chain(&create.clone) {
            self.need(StatementKind::Select, source)?;
        }
        for column in &create.columns {
            self.column(column)?;
        }
        for constraint in &create.constraints {
            self.constraint(constraint)?;
        }
        ControlFlow::Continue(())
    }

    fn alter_table(&mut self, alter: &ast::AlterTable) -> Flow {
        if alter.location.is_some() || alter.table_type.is_some() || alter.on_cluster.is_some() {
            return unsupported("non-standard ALTER TABLE");
        }
        self.need(StatementKind::Ddl, &alter.name)?;
        for operation in &alter.operations {
            match operation {
                AlterTableOperation::AddColumn { column_def, .. } => self.column(column_def)?,
                AlterTableOperation::AddConstraint { constraint, .. } => {
                    self.constraint(constraint)?
                }
                AlterTableOperation::DropColumn { drop_behavior, .. }
                | AlterTableOperation::DropConstraint { drop_behavior, .. } => {
                    // CASCADE also drops views and constraints of other tables.
                    if *drop_behavior == Some(DropBehavior::Cascade) {
                        return unsupported("ALTER TABLE ... DROP ... CASCADE");
                    }
                }
                AlterTableOperation::RenameTable { table_name } => {
                    let (RenameTableNameKind::As(new) | RenameTableNameKind::To(new)) = table_name;
                    // The renamed table stays in its schema: `s.a RENAME TO b` creates `s.b`.
                    let mut qualified =
                        alter.name.0[..alter.name.0.len().saturating_sub(1)].to_vec();
                    if new.0.len() > 1 {
                        qualified.clear();
                    }
                    qualified.extend(new.0.iter().cloned());
                    let table = self.name(&ObjectName(qualified))?;
                    self.needs.insert((StatementKind::Ddl, table));
                }
                AlterTableOperation::RenameColumn { .. }
                | AlterTableOperation::RenameConstraint { .. }
                | AlterTableOperation::AlterColumn { .. }
                | AlterTableOperation::ValidateConstraint { .. } => {}
                // Ownership, row-level security, triggers, partitions, replication and
                // storage settings reach beyond the table's own shape.
                other => {
                    return unsupported(format!(
                        "ALTER TABLE ... {}",
                        leading_keywords(&other.to_string())
                    ));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn column(&mut self, column: &ColumnDef) -> Flow {
        for option in &column.options {
            match &option.option {
                ColumnOption::ForeignKey(foreign_key) => {
                    self.need(StatementKind::Select, &foreign_key.foreign_table)?
                }
                // SQLite would end the host's transaction on a later conflict.
                ColumnOption::OnConflict(Keyword::ROLLBACK) => {
                    return unsupported("ON CONFLICT ROLLBACK");
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    /// A foreign key reads the referenced table (inserts reveal which keys exist) and
    /// constrains deletes from it, so it needs at least Select there.
    fn constraint(&mut self, constraint: &TableConstraint) -> Flow {
        if let TableConstraint::ForeignKey(foreign_key) = constraint {
            self.need(StatementKind::Select, &foreign_key.foreign_table)?;
        }
        ControlFlow::Continue(())
    }

    fn select_into(&mut self, select: &Select) -> Flow {
        let Some(into) = &select.into else {
            return ControlFlow::Continue(());
        };
        self.selects_into = true;
        let name = match into.targets.as_slice() {
            [Expr::Identifier(ident)] => self.ident(ident),
            [Expr::CompoundIdentifier(idents)] => idents
                .iter()
                .map(|ident| self.ident(ident))
                .collect::<Vec<_>>()
                .join("."),
            _ => return unsupported("SELECT INTO"),
        };
        self.needs.insert((StatementKind::Ddl, name));
        ControlFlow::Continue(())
    }
}

/// Rejects query bodies the relation hook cannot see into.
fn check_query_body(body: &SetExpr) -> Flow {
    let mut pending = vec![body];
    while let Some(expr) = pending.pop() {
        match expr {
            SetExpr::SetOperation { left, right, .. } => {
                pending.push(left);
                pending.push(right);
            }
            // `TABLE t` keeps the name as a bare string, not as a relation.
            SetExpr::Table(_) => return unsupported("TABLE"),
            _ => {}
        }
    }
    ControlFlow::Continue(())
}

impl Visitor for Collector {
    type Break = Box<SqlError>;

    fn pre_visit_statement(&mut self, statement: &Statement) -> Flow {
        let top_level = self.statement_depth == 0;
        self.statement_depth += 1;
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            _ if top_level => self.ddl(statement),
            other => unsupported(statement_name(other)),
        }
    }

    fn post_visit_statement(&mut self, _statement: &Statement) -> Flow {
        self.statement_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> Flow {
        check_query_body(&query.body)?;
        if !query.pipe_operators.is_empty() {
            return unsupported("pipe syntax");
        }
        let base = match self.cte_bodies.remove(&(query as *const Query)) {
            Some(visible) => visible,
            None => self.scopes.last().cloned().unwrap_or_default(),
        };
        let mut scope = base.clone();
        if let Some(with) = &query.with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| self.ident(&cte.alias.name))
                .collect();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                // Without RECURSIVE, a CTE named like a table reads that table in its body.
                let defined = if with.recursive {
                    &names[..]
                } else {
                    &names[..i]
                };
                let mut visible = base.clone();
                visible.extend_from_slice(defined);
                self.cte_bodies.insert(&*cte.query, visible);
            }
            scope.extend(names);
        }
        self.scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> Flow {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> Flow {
        self.select_into(select)
    }

    fn pre_visit_table_factor(&mut self, table_factor: &TableFactor) -> Flow {
        match table_factor {
            // The name is also visited as a relation, which counts it as a read unless
            // it is marked handled here.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                self.function(name)?;
                if self.is_table_function(name) {
                    self.handled.insert(name);
                }
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => {
                self.function(name)?;
                if self.is_table_function(name) {
                    ControlFlow::Continue(())
                } else {
                    self.need(StatementKind::Select, name)
                }
            }
            TableFactor::SemanticView { .. } => unsupported("SEMANTIC_VIEW"),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> Flow {
        if self.handled.contains(&(relation as *const ObjectName)) {
            return ControlFlow::Continue(());
        }
        let table = self.name(relation)?;
        let is_cte = relation.0.len() == 1
            && self
                .scopes
                .last()
                .is_some_and(|scope| scope.contains(&table));
        if !is_cte {
            self.needs.insert((StatementKind::Select, table));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> Flow {
        match expr {
            Expr::Function(function) => self.function(&function.name),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// A short name for a rejected statement ("BEGIN", "SET", "CREATE FUNCTION").
fn statement_name(statement: &Statement) -> String {
    let name = match statement {
        Statement::StartTransaction { begin: true, .. } => "BEGIN",
        Statement::StartTransaction { .. } => "START TRANSACTION",
        Statement::Commit { .. } => "COMMIT",
        Statement::Rollback { .. } => "ROLLBACK",
        Statement::Savepoint { .. } => "SAVEPOINT",
        Statement::ReleaseSavepoint { .. } => "RELEASE SAVEPOINT",
        Statement::Set(_) => "SET",
        Statement::Reset(_) => "RESET",
        Statement::Pragma { .. } => "PRAGMA",
        Statement::AttachDatabase { .. } | Statement::AttachDuckDBDatabase { .. } => "ATTACH",
        Statement::DetachDuckDBDatabase { .. } => "DETACH",
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => "COPY",
        Statement::Grant(_) => "GRANT",
        Statement::Revoke(_) => "REVOKE",
        Statement::Call(_) => "CALL",
        Statement::Explain { .. } | Statement::ExplainTable { .. } => "EXPLAIN",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::CreateProcedure { .. } => "CREATE PROCEDURE",
        Statement::CreateExtension(_) => "CREATE EXTENSION",
        Statement::CreateRole(_) => "CREATE ROLE",
        Statement::CreateUser(_) => "CREATE USER",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::CreateVirtualTable { .. } => "CREATE VIRTUAL TABLE",
        Statement::CreateTrigger(_) => "CREATE TRIGGER",
        Statement::CreateSequence { .. } => "CREATE SEQUENCE",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateType { .. } => "CREATE TYPE",
        Statement::Vacuum(_) => "VACUUM",
        Statement::Analyze(_) => "ANALYZE",
        Statement::LISTEN { .. } => "LISTEN",
        Statement::UNLISTEN { .. } => "UNLISTEN",
        Statement::NOTIFY { .. } => "NOTIFY",
        Statement::Merge(_) => "MERGE",
        Statement::Lock(_) | Statement::LockTables { .. } => "LOCK",
        Statement::Prepare { .. } => "PREPARE",
        Statement::Execute { .. } => "EXECUTE",
        Statement::Deallocate { .. } => "DEALLOCATE",
        Statement::Declare { .. } => "DECLARE",
        Statement::Fetch { .. } => "FETCH",
        Statement::Close { .. } => "CLOSE",
        Statement::Discard { .. } => "DISCARD",
        Statement::Comment { .. } => "COMMENT",
        Statement::Drop { object_type, .. } => return format!("DROP {object_type}"),
        other => return leading_keywords(&other.to_string()),
    };
    name.to_string()
}

/// Up to two leading upper-case keywords of a statement's SQL text: names the rarer
/// statement kinds without listing every one sqlparser knows.
fn leading_keywords(sql: &str) -> String {
    let words: Vec<&str> = sql
        .split_whitespace()
        .take_while(|word| word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .take(2)
        .collect();
    if words.is_empty() {
        "unrecognized".to_string()
    } else {
        words.join(" ")
    }
}

type CacheEntry = Result<Arc<SqlAccess>, SqlError>;

/// Analyses keyed by (dialect, SQL text), so a plugin that runs the same statement
/// 100k times parses it once. Bounded: when full, it is cleared, which keeps every
/// operation O(1) and costs one re-parse per statement still in use.
pub struct AnalysisCache {
    capacity: usize,
    /// One map per dialect, so lookups borrow the SQL text instead of building a key.
    entries: Mutex<[HashMap<String, CacheEntry>; 2]>,
}

/// Statements longer than this are analyzed but not cached: they are typically bulk
/// inserts with inline values that never repeat, and would make the bound on entries a
/// poor bound on memory.
const MAX_CACHED_SQL_LEN: usize = 16 * 1024;

impl AnalysisCache {
    pub fn new(capacity: usize) -> Self {
        AnalysisCache {
            capacity,
            entries: Mutex::new([HashMap::new(), HashMap::new()]),
        }
    }

    pub fn analyze(&self, sql: &str, dialect: SqlDialect) -> Result<Arc<SqlAccess>, SqlError> {
        let slot = match dialect {
            SqlDialect::Postgres => 0,
            SqlDialect::Sqlite => 1,
        };
        if let Some(hit) = self.lock()[slot].get(sql) {
            return hit.clone();
        }
        // Parse without holding the lock; two threads may both parse a new statement,
        // which is cheaper than serializing every parse.
        let entry = analyze(sql, dialect).map(Arc::new);
        if self.capacity > 0 && sql.len() <= MAX_CACHED_SQL_LEN {
            let mut entries = self.lock();
            if entries.iter().map(HashMap::len).sum::<usize>() >= self.capacity {
                entries.iter_mut().for_each(HashMap::clear);
            }
            return entries[slot]
                .entry(sql.to_string())
                .or_insert(entry)
                .clone();
        }
        entry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, CacheEntry>; 2]> {
        // Nothing panics while the lock is held, and the maps stay valid even if it did.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for AnalysisCache {
    fn default() -> Self {
        AnalysisCache::new(1024)
    }
}

impl fmt::Debug for AnalysisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len: usize = self.lock().iter().map(HashMap::len).sum();
        f.debug_struct("AnalysisCache")
            .field("capacity", &self.capacity)
            .field("len", &len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::StatementKind::{Ddl, Delete, Insert, Select, Update};
    use super::{AnalysisCache, SqlAccess, SqlDialect, SqlError, StatementKind, analyze};

    fn set(pairs: &[(StatementKind, &str)]) -> BTreeSet<(StatementKind, String)> {
        pairs
            .iter()
            .map(|(kind, table)| (*kind, table.to_string()))
            .collect()
    }

    fn ok(sql: &str, dialect: SqlDialect) -> SqlAccess {
        analyze(sql, dialect).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn pg(sql: &str) -> SqlAccess {
        ok(sql, SqlDialect::Postgres)
    }

    fn lite(sql: &str) -> SqlAccess {
        ok(sql, SqlDialect::Sqlite)
    }

    #[track_caller]
    fn pg_needs(sql: &str, expected: &[(StatementKind, &str)]) {
        assert_eq!(pg(sql).needs, set(expected), "{sql}");
    }

    #[track_caller]
    fn lite_needs(sql: &str, expected: &[(StatementKind, &str)]) {
        assert_eq!(lite(sql).needs, set(expected), "{sql}");
    }

    #[track_caller]
    fn pg_err(sql: &str) -> SqlError {
        analyze(sql, SqlDialect::Postgres).expect_err(sql)
    }

    #[track_caller]
    fn lite_err(sql: &str) -> SqlError {
        analyze(sql, SqlDialect::Sqlite).expect_err(sql)
    }

    fn unsupported(what: &str) -> SqlError {
        SqlError::Unsupported(what.to_string())
    }

    fn forbidden(name: &str) -> SqlError {
        SqlError::ForbiddenFunction(name.to_string())
    }

    #[test]
    fn plain_select() {
        let access = pg("SELECT id, amount FROM invoices WHERE id = $1");
        assert_eq!(access.statement, Select);
        assert!(access.returns_rows);
        assert_eq!(access.needs, set(&[(Select, "invoices")]));
        assert_eq!(
            access.requirements().collect::<Vec<_>>(),
            vec![(Select, "invoices")]
        );
        pg_needs("SELECT 1", &[]);
        pg_needs("VALUES (1, 'a'), (2, 'b')", &[]);
        pg_needs("SELECT * FROM invoices FOR UPDATE", &[(Select, "invoices")]);
    }

    #[test]
    fn joins() {
        pg_needs(
            "SELECT * FROM invoices i JOIN customers c ON c.id = i.customer_id \
             LEFT JOIN payments p USING (invoice_id) CROSS JOIN plans, refunds",
            &[
                (Select, "customers"),
                (Select, "invoices"),
                (Select, "payments"),
                (Select, "plans"),
                (Select, "refunds"),
            ],
        );
    }

    #[test]
    fn subqueries_everywhere() {
        pg_needs(
            "SELECT i.id, (SELECT max(p.amount) FROM payments p WHERE p.invoice_id = i.id) \
             FROM invoices i \
             WHERE i.customer_id IN (SELECT id FROM customers c \
                 WHERE EXISTS (SELECT 1 FROM blocks b WHERE b.customer_id = c.id)) \
             GROUP BY i.id HAVING count(*) > (SELECT min(n) FROM limits) \
             ORDER BY (SELECT 1 FROM sort_keys LIMIT 1)",
            &[
                (Select, "blocks"),
                (Select, "customers"),
                (Select, "invoices"),
                (Select, "limits"),
                (Select, "payments"),
                (Select, "sort_keys"),
            ],
        );
    }

    #[test]
    fn derived_tables_and_lateral() {
        pg_needs(
            "SELECT * FROM (SELECT * FROM a) x \
             CROSS JOIN LATERAL (SELECT * FROM b WHERE b.id = x.id) y",
            &[(Select, "a"), (Select, "b")],
        );
    }

    #[test]
    fn cte_names_are_not_tables() {
        pg_needs(
            "WITH overdue AS (SELECT * FROM invoices WHERE due < now()) \
             SELECT * FROM overdue JOIN customers ON customers.id = overdue.customer_id",
            &[(Select, "customers"), (Select, "invoices")],
        );
        // A later CTE may use an earlier one, but not the other way round.
        pg_needs(
            "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a, b",
            &[(Select, "b")],
        );
    }

    #[test]
    fn cte_named_like_a_table_shadows_it_only_in_its_scope() {
        pg_needs(
            "WITH invoices AS (SELECT * FROM archive) SELECT * FROM invoices",
            &[(Select, "archive")],
        );
        // Without RECURSIVE the body's `invoices` is the real table.
        pg_needs(
            "WITH invoices AS (SELECT * FROM invoices WHERE paid) SELECT * FROM invoices",
            &[(Select, "invoices")],
        );
        // The CTE lives in the subquery; the outer `invoices` is the table.
        pg_needs(
            "SELECT * FROM invoices WHERE id IN \
             (WITH invoices AS (SELECT 1 AS id) SELECT id FROM invoices)",
            &[(Select, "invoices")],
        );
        pg_needs(
            "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x, t",
            &[(Select, "t")],
        );
        // Schema-qualified names never refer to a CTE.
        pg_needs(
            "WITH invoices AS (SELECT 1) SELECT * FROM public.invoices",
            &[(Select, "public.invoices")],
        );
        // Quoted CTE names keep their case, so "Invoices" does not shadow invoices.
        pg_needs(
            "WITH \"Invoices\" AS (SELECT 1) SELECT * FROM invoices",
            &[(Select, "invoices")],
        );
    }

    #[test]
    fn recursive_cte() {
        pg_needs(
            "WITH RECURSIVE tree(id, parent) AS ( \
                 SELECT id, parent FROM accounts WHERE id = $1 \
                 UNION ALL \
                 SELECT a.id, a.parent FROM accounts a JOIN tree ON a.parent = tree.id) \
             SELECT * FROM tree",
            &[(Select, "accounts")],
        );
    }

    #[test]
    fn nested_ctes() {
        pg_needs(
            "WITH a AS (WITH b AS (SELECT * FROM t1) SELECT * FROM b JOIN t2 ON true) \
             SELECT * FROM a, b",
            &[(Select, "b"), (Select, "t1"), (Select, "t2")],
        );
    }

    #[test]
    fn data_modifying_ctes_need_their_write_kind() {
        let access = pg("WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d");
        assert_eq!(access.statement, Select);
        assert!(access.returns_rows);
        assert_eq!(access.needs, set(&[(Delete, "a")]));

        let access = pg(
            "WITH moved AS (DELETE FROM sessions WHERE expires < now() RETURNING *) \
             INSERT INTO sessions_archive SELECT * FROM moved",
        );
        assert_eq!(access.statement, Insert);
        assert!(!access.returns_rows);
        assert_eq!(
            access.needs,
            set(&[(Delete, "sessions"), (Insert, "sessions_archive")])
        );

        // A write target is always the real table, even when a CTE has its name.
        pg_needs(
            "WITH t AS (SELECT 1 AS id) DELETE FROM t WHERE id IN (SELECT id FROM t)",
            &[(Delete, "t")],
        );
        pg_needs(
            "WITH u AS (UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING id) \
             INSERT INTO ledger (account_id) SELECT id FROM u",
            &[(Insert, "ledger"), (Update, "accounts")],
        );
    }

    #[test]
    fn with_wrapping_a_write() {
        let access = pg(
            "WITH stale AS (SELECT id FROM sessions WHERE expires < now()) \
             DELETE FROM sessions WHERE id IN (SELECT id FROM stale)",
        );
        assert_eq!(access.statement, Delete);
        assert!(!access.returns_rows);
        assert_eq!(
            access.needs,
            set(&[(Delete, "sessions"), (Select, "sessions")])
        );
    }

    #[test]
    fn update_from_and_self_reads() {
        let access = pg("UPDATE invoices SET status = 'paid' FROM payments \
             WHERE payments.invoice_id = invoices.id");
        assert_eq!(access.statement, Update);
        assert!(!access.returns_rows);
        assert_eq!(
            access.needs,
            set(&[(Select, "payments"), (Update, "invoices")])
        );
        pg_needs(
            "UPDATE t SET x = (SELECT max(x) FROM t)",
            &[(Select, "t"), (Update, "t")],
        );
        pg_needs("UPDATE t SET x = x + 1 WHERE id = $1", &[(Update, "t")]);
    }

    #[test]
    fn delete_using() {
        let access = pg("DELETE FROM invoices USING customers \
             WHERE customers.id = invoices.customer_id AND customers.deleted");
        assert_eq!(access.statement, Delete);
        assert_eq!(
            access.needs,
            set(&[(Delete, "invoices"), (Select, "customers")])
        );
    }

    #[test]
    fn inserts() {
        let access = pg("INSERT INTO t (a, b) VALUES ($1, $2)");
        assert_eq!(access.statement, Insert);
        assert!(!access.returns_rows);
        assert_eq!(access.needs, set(&[(Insert, "t")]));
        pg_needs(
            "INSERT INTO archive (id) SELECT id FROM invoices WHERE paid",
            &[(Insert, "archive"), (Select, "invoices")],
        );
        pg_needs(
            "INSERT INTO t SELECT * FROM t",
            &[(Insert, "t"), (Select, "t")],
        );
        pg_needs(
            "INSERT INTO t (a) VALUES ((SELECT max(a) FROM u))",
            &[(Insert, "t"), (Select, "u")],
        );
    }

    #[test]
    fn on_conflict() {
        // An upsert overwrites existing rows, so it needs Update on the target too.
        pg_needs(
            "INSERT INTO balances (customer_id, amount) VALUES ($1, $2) \
             ON CONFLICT (customer_id) DO UPDATE SET amount = balances.amount + EXCLUDED.amount \
             WHERE balances.locked = (SELECT false FROM flags)",
            &[
                (Insert, "balances"),
                (Select, "flags"),
                (Update, "balances"),
            ],
        );
        pg_needs(
            "INSERT INTO t (id) VALUES (1) ON CONFLICT DO NOTHING",
            &[(Insert, "t")],
        );
        pg_needs(
            "INSERT INTO t VALUES (1) ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING",
            &[(Insert, "t")],
        );
    }

    #[test]
    fn returning() {
        for (sql, kind) in [
            ("INSERT INTO t (a) VALUES (1) RETURNING id", Insert),
            ("UPDATE t SET a = 1 RETURNING *", Update),
            ("DELETE FROM t WHERE a = 1 RETURNING id", Delete),
        ] {
            let access = pg(sql);
            assert_eq!(access.statement, kind, "{sql}");
            assert!(access.returns_rows, "{sql}");
            assert_eq!(access.needs, set(&[(kind, "t")]), "{sql}");
        }
        let access = lite("DELETE FROM t RETURNING id");
        assert!(access.returns_rows);
        assert_eq!(access.needs, set(&[(Delete, "t")]));
    }

    #[test]
    fn set_operations() {
        pg_needs(
            "SELECT id FROM a UNION SELECT id FROM b EXCEPT SELECT id FROM c \
             INTERSECT (SELECT id FROM d)",
            &[(Select, "a"), (Select, "b"), (Select, "c"), (Select, "d")],
        );
        // `TABLE t` carries the name as a bare string the analysis cannot check.
        assert_eq!(pg_err("SELECT 1 UNION TABLE secret"), unsupported("TABLE"));
    }

    #[test]
    fn table_functions_are_not_tables() {
        pg_needs("SELECT * FROM generate_series(1, 10) g", &[]);
        pg_needs(
            "SELECT * FROM invoices i, LATERAL jsonb_array_elements(i.lines) l",
            &[(Select, "invoices")],
        );
        pg_needs("SELECT * FROM unnest(ARRAY[1, 2]) AS u(x)", &[]);
        lite_needs(
            "SELECT j.value FROM events e, json_each(e.payload) j",
            &[(Select, "events")],
        );
        lite_needs("SELECT value FROM generate_series(1, 10)", &[]);
        // In SQLite a virtual table can be queried with function syntax: it is still read.
        lite_needs("SELECT * FROM docs_fts('needle')", &[(Select, "docs_fts")]);
        lite_needs("SELECT * FROM dbstat('main')", &[(Select, "dbstat")]);
        assert_eq!(
            pg_err("SELECT * FROM pg_ls_dir('.')"),
            forbidden("pg_ls_dir")
        );
        assert_eq!(
            pg_err("SELECT * FROM t, LATERAL dblink('x', 'select 1') AS d(a int)"),
            forbidden("dblink")
        );
    }

    #[test]
    fn names_are_normalized() {
        pg_needs(
            "SELECT * FROM public.Invoices \
             JOIN \"Billing\".\"Customers\" ON true \
             JOIN \"weird.name\" ON true \
             JOIN \"a\"\"b\" ON true \
             JOIN PUBLIC.\"plans\" ON true",
            &[
                (Select, "Billing.Customers"),
                (Select, "\"a\"\"b\""),
                (Select, "\"weird.name\""),
                (Select, "public.invoices"),
                (Select, "public.plans"),
            ],
        );
        pg_needs(
            "DELETE FROM Billing.Sessions",
            &[(Delete, "billing.sessions")],
        );
        // SQLite compares identifiers case-insensitively, quoted or not.
        lite_needs(
            "SELECT * FROM main.Invoices JOIN \"Customers\" ON 1 JOIN [Plans] ON 1 \
             JOIN `Refunds` ON 1",
            &[
                (Select, "customers"),
                (Select, "main.invoices"),
                (Select, "plans"),
                (Select, "refunds"),
            ],
        );
        // Only ASCII letters fold: `Ä` and `ä` are different tables.
        pg_needs("SELECT * FROM Äpfel", &[(Select, "Äpfel")]);
    }

    #[test]
    fn only_is_rejected_rather_than_misread() {
        let err = SqlError::Parse("`ONLY <table>` is not supported".to_string());
        assert_eq!(pg_err("SELECT * FROM ONLY invoices"), err);
        assert_eq!(pg_err("DELETE FROM ONLY invoices"), err);
        assert_eq!(pg_err("UPDATE ONLY invoices SET a = 1"), err);
    }

    #[test]
    fn statement_count() {
        assert_eq!(pg_err(""), SqlError::StatementCount(0));
        assert_eq!(pg_err("  -- nothing\n"), SqlError::StatementCount(0));
        assert_eq!(pg_err(";"), SqlError::StatementCount(0));
        assert_eq!(pg_err("SELECT 1; SELECT 2"), SqlError::StatementCount(2));
        assert_eq!(
            pg_err("SELECT * FROM t; DROP TABLE t"),
            SqlError::StatementCount(2)
        );
        assert_eq!(
            lite_err("SELECT 1; SELECT 2; SELECT 3"),
            SqlError::StatementCount(3)
        );
        pg_needs("SELECT * FROM t;", &[(Select, "t")]);
        lite_needs("SELECT * FROM t ; ", &[(Select, "t")]);
    }

    #[test]
    fn transaction_control_is_unsupported() {
        for (sql, name) in [
            ("BEGIN", "BEGIN"),
            ("START TRANSACTION", "START TRANSACTION"),
            ("COMMIT", "COMMIT"),
            ("ROLLBACK", "ROLLBACK"),
            ("SAVEPOINT a", "SAVEPOINT"),
            ("RELEASE SAVEPOINT a", "RELEASE SAVEPOINT"),
            ("ROLLBACK TO SAVEPOINT a", "ROLLBACK"),
        ] {
            assert_eq!(pg_err(sql), unsupported(name), "{sql}");
        }
        assert_eq!(lite_err("BEGIN IMMEDIATE"), unsupported("BEGIN"));
        assert_eq!(lite_err("END"), unsupported("COMMIT"));
    }

    #[test]
    fn session_and_admin_statements_are_unsupported() {
        for (sql, name) in [
            ("SET search_path = evil", "SET"),
            ("SET ROLE admin", "SET"),
            ("RESET ALL", "RESET"),
            ("SHOW search_path", "SHOW"),
            ("COPY invoices TO '/tmp/x'", "COPY"),
            ("COPY invoices FROM PROGRAM 'id'", "COPY"),
            ("GRANT SELECT ON invoices TO bob", "GRANT"),
            ("REVOKE SELECT ON invoices FROM bob", "REVOKE"),
            ("CALL refund_all()", "CALL"),
            ("EXPLAIN SELECT 1", "EXPLAIN"),
            ("EXPLAIN ANALYZE DELETE FROM invoices", "EXPLAIN"),
            (
                "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
                "CREATE FUNCTION",
            ),
            ("CREATE EXTENSION dblink", "CREATE EXTENSION"),
            ("CREATE ROLE bob", "CREATE ROLE"),
            ("CREATE VIEW v AS SELECT * FROM invoices", "CREATE VIEW"),
            ("CREATE SCHEMA s", "CREATE SCHEMA"),
            ("VACUUM", "VACUUM"),
            ("LISTEN c", "LISTEN"),
            ("NOTIFY c", "NOTIFY"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("LOCK TABLE invoices", "LOCK"),
            ("DISCARD ALL", "DISCARD"),
            (
                "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
                "MERGE",
            ),
            ("DROP VIEW v", "DROP VIEW"),
            ("DROP SCHEMA s", "DROP SCHEMA"),
            ("DROP ROLE bob", "DROP ROLE"),
        ] {
            assert_eq!(pg_err(sql), unsupported(name), "{sql}");
        }
        // sqlparser does not know DO; it is still denied.
        assert!(matches!(pg_err("DO $$BEGIN END$$"), SqlError::Parse(_)));
    }

    #[test]
    fn sqlite_only_statements_are_unsupported() {
        for (sql, name) in [
            ("PRAGMA writable_schema = 1", "PRAGMA"),
            ("ATTACH 'other.db' AS other", "ATTACH"),
            (
                "CREATE VIRTUAL TABLE v USING fts5(body)",
                "CREATE VIRTUAL TABLE",
            ),
            (
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END",
                "CREATE TRIGGER",
            ),
            ("VACUUM", "VACUUM"),
            ("ANALYZE", "ANALYZE"),
        ] {
            assert_eq!(lite_err(sql), unsupported(name), "{sql}");
        }
        assert!(matches!(lite_err("DETACH other"), SqlError::Parse(_)));
    }

    #[test]
    fn ddl() {
        let access = pg("CREATE TABLE refunds (id bigint PRIMARY KEY, note text)");
        assert_eq!(access.statement, Ddl);
        assert!(!access.returns_rows);
        assert_eq!(access.needs, set(&[(Ddl, "refunds")]));

        pg_needs(
            "CREATE TABLE snapshot AS SELECT * FROM invoices",
            &[(Ddl, "snapshot"), (Select, "invoices")],
        );
        pg_needs(
            "CREATE TABLE lines (id int, invoice_id int REFERENCES invoices (id), \
             plan_id int, FOREIGN KEY (plan_id) REFERENCES billing.plans (id))",
            &[
                (Ddl, "lines"),
                (Select, "billing.plans"),
                (Select, "invoices"),
            ],
        );
        pg_needs(
            "CREATE TABLE copy (LIKE invoices)",
            &[(Ddl, "copy"), (Select, "invoices")],
        );
        pg_needs(
            "CREATE TABLE p2024 PARTITION OF payments FOR VALUES IN (2024)",
            &[(Ddl, "p2024"), (Ddl, "payments")],
        );
        pg_needs(
            "CREATE TABLE child (x int) INHERITS (parent)",
            &[(Ddl, "child"), (Ddl, "parent")],
        );
        pg_needs(
            "CREATE UNIQUE INDEX invoices_number ON invoices (number)",
            &[(Ddl, "invoices")],
        );
        pg_needs(
            "ALTER TABLE invoices ADD COLUMN note text, ALTER COLUMN amount SET NOT NULL, \
             RENAME COLUMN a TO b",
            &[(Ddl, "invoices")],
        );
        pg_needs(
            "ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)",
            &[(Ddl, "invoices"), (Select, "customers")],
        );
        pg_needs(
            "ALTER TABLE billing.old RENAME TO new",
            &[(Ddl, "billing.new"), (Ddl, "billing.old")],
        );
        pg_needs("DROP TABLE a, b", &[(Ddl, "a"), (Ddl, "b")]);
        pg_needs("DROP TABLE IF EXISTS a", &[(Ddl, "a")]);
        // An index is named by itself; its table is not in the statement.
        pg_needs("DROP INDEX invoices_number", &[(Ddl, "invoices_number")]);
        pg_needs("TRUNCATE a, b", &[(Ddl, "a"), (Ddl, "b")]);
        lite_needs(
            "CREATE TABLE IF NOT EXISTS t (a INTEGER) STRICT",
            &[(Ddl, "t")],
        );
        lite_needs("CREATE INDEX i ON t (a)", &[(Ddl, "t")]);
        lite_needs("DROP INDEX i", &[(Ddl, "i")]);
    }

    #[test]
    fn ddl_that_reaches_other_objects_is_unsupported() {
        assert_eq!(
            pg_err("DROP TABLE t CASCADE"),
            unsupported("DROP ... CASCADE")
        );
        assert_eq!(
            pg_err("TRUNCATE t CASCADE"),
            unsupported("TRUNCATE ... CASCADE")
        );
        assert_eq!(
            pg_err("ALTER TABLE t DROP COLUMN a CASCADE"),
            unsupported("ALTER TABLE ... DROP ... CASCADE")
        );
        assert_eq!(
            pg_err("ALTER TABLE t OWNER TO bob"),
            unsupported("ALTER TABLE ... OWNER TO")
        );
        assert_eq!(
            pg_err("ALTER TABLE t DISABLE ROW LEVEL SECURITY"),
            unsupported("ALTER TABLE ... DISABLE ROW")
        );
        assert_eq!(
            lite_err("CREATE TABLE t (a INT UNIQUE ON CONFLICT ROLLBACK)"),
            unsupported("ON CONFLICT ROLLBACK")
        );
    }

    #[test]
    fn select_into_creates_a_table() {
        let access = pg("SELECT * INTO TEMP snapshot FROM invoices");
        assert_eq!(access.statement, Ddl);
        assert!(!access.returns_rows);
        assert_eq!(
            access.needs,
            set(&[(Ddl, "snapshot"), (Select, "invoices")])
        );
    }

    #[test]
    fn forbidden_functions() {
        for (sql, name) in [
            ("SELECT pg_sleep(10)", "pg_sleep"),
            ("SELECT PG_SLEEP(10)", "PG_SLEEP"),
            ("SELECT \"pg_sleep\"(10)", "\"pg_sleep\""),
            (
                "SELECT pg_catalog.pg_read_file('/etc/passwd')",
                "pg_catalog.pg_read_file",
            ),
            (
                "SELECT * FROM invoices WHERE id IN (SELECT lo_import('/etc/passwd'))",
                "lo_import",
            ),
            (
                "SELECT pg_terminate_backend(pid) FROM sessions",
                "pg_terminate_backend",
            ),
            ("SELECT set_config('role', 'admin', false)", "set_config"),
            (
                "SELECT current_setting('data_directory')",
                "current_setting",
            ),
            ("SELECT dblink_exec('db', 'DROP TABLE t')", "dblink_exec"),
            (
                "SELECT query_to_xml('select 1', true, true, '')",
                "query_to_xml",
            ),
            (
                "SELECT table_to_xml('secrets', true, true, '')",
                "table_to_xml",
            ),
            ("SELECT * FROM ts_stat('select v from secrets')", "ts_stat"),
            ("SELECT setval('invoice_number_seq', 1)", "setval"),
            (
                "UPDATE invoices SET note = pg_read_file('x') WHERE id = 1",
                "pg_read_file",
            ),
            (
                "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = pg_sleep(1)",
                "pg_sleep",
            ),
            ("SELECT * FROM t ORDER BY pg_sleep(1)", "pg_sleep"),
            ("WITH x AS (SELECT pg_sleep(1)) SELECT * FROM x", "pg_sleep"),
            (
                "CREATE TABLE t (a text DEFAULT current_setting('x'))",
                "current_setting",
            ),
        ] {
            assert_eq!(pg_err(sql), forbidden(name), "{sql}");
        }
        for (sql, name) in [
            ("SELECT load_extension('evil.so')", "load_extension"),
            ("SELECT readfile('/etc/passwd')", "readfile"),
            ("SELECT writefile('/tmp/x', 'y')", "writefile"),
            ("SELECT edit('x')", "edit"),
            ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
            (
                "SELECT * FROM pragma_table_info('secrets')",
                "pragma_table_info",
            ),
        ] {
            assert_eq!(lite_err(sql), forbidden(name), "{sql}");
        }
        pg_needs(
            "SELECT now(), lower(name), coalesce(a, b), count(*), \
             date_trunc('month', created_at) FROM t",
            &[(Select, "t")],
        );
    }

    #[test]
    fn escaped_identifiers_cannot_hide_a_function() {
        assert!(matches!(
            pg_err("SELECT U&\"pg\\005fsleep\"(1)"),
            SqlError::Parse(_)
        ));
        assert!(matches!(
            pg_err("SELECT u&\"set\\005fconfig\"('a', 'b', false)"),
            SqlError::Parse(_)
        ));
        // A bitwise AND on a quoted column, written with spaces, is fine.
        pg_needs("SELECT u & \"flags\" FROM t", &[(Select, "t")]);
    }

    #[test]
    fn tokenizer_agrees_with_the_database_on_strings_and_comments() {
        // E-strings use backslash escapes: the string ends before the subquery.
        pg_needs(
            "SELECT E'\\\\' , (SELECT x FROM secrets) --'",
            &[(Select, "secrets")],
        );
        pg_needs(
            "SELECT E'\\'' , (SELECT x FROM secrets) --'",
            &[(Select, "secrets")],
        );
        pg_needs(
            "SELECT e'a\\\\' , (SELECT x FROM secrets) --'",
            &[(Select, "secrets")],
        );
        // Without E, a backslash is an ordinary character.
        pg_needs(
            "SELECT 'a\\' , (SELECT x FROM secrets) --'",
            &[(Select, "secrets")],
        );
        // Postgres ends `--` comments at a carriage return too.
        pg_needs(
            "SELECT 1 -- note\r, (SELECT x FROM secrets)",
            &[(Select, "secrets")],
        );
        // Postgres nests block comments; SQLite does not.
        pg_needs("SELECT 1 /* /* */ , (SELECT x FROM secrets) -- */", &[]);
        lite_needs(
            "SELECT 1 /* /* */ , (SELECT x FROM secrets) -- */",
            &[(Select, "secrets")],
        );
        // sqlparser would read `$1$ ... $1$` as one string; Postgres reads `$1` then SQL.
        assert!(matches!(
            pg_err("SELECT $1$ , (SELECT x FROM secrets) , $1$"),
            SqlError::Parse(_)
        ));
        pg_needs("SELECT $tag$ it's $$ fine $tag$", &[]);
    }

    #[test]
    fn sqlite_specifics() {
        let access = lite("INSERT OR REPLACE INTO t (id, a) VALUES (?, ?)");
        assert_eq!(access.statement, Insert);
        assert_eq!(access.needs, set(&[(Delete, "t"), (Insert, "t")]));
        lite_needs("REPLACE INTO t VALUES (1)", &[(Delete, "t"), (Insert, "t")]);
        lite_needs("INSERT OR IGNORE INTO t VALUES (1)", &[(Insert, "t")]);
        lite_needs(
            "UPDATE OR REPLACE t SET id = 5 WHERE id = 4",
            &[(Delete, "t"), (Update, "t")],
        );
        assert_eq!(
            lite_err("INSERT OR ROLLBACK INTO t VALUES (1)"),
            unsupported("INSERT OR ROLLBACK")
        );
        assert_eq!(
            lite_err("UPDATE OR ROLLBACK t SET a = 1"),
            unsupported("UPDATE OR ROLLBACK")
        );
        lite_needs(
            "SELECT strftime('%Y-%m', created_at) AS month, sum(amount) FROM payments \
             GROUP BY month",
            &[(Select, "payments")],
        );
        lite_needs(
            "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
            &[(Insert, "t"), (Update, "t")],
        );
    }

    #[test]
    fn placeholders() {
        pg_needs(
            "SELECT * FROM t WHERE a = $1 AND b = ANY($2) LIMIT $3",
            &[(Select, "t")],
        );
        lite_needs(
            "SELECT * FROM t WHERE a = ? AND b = ?2 AND c = $1 AND d = :name AND e = @e",
            &[(Select, "t")],
        );
        lite_needs("INSERT INTO t VALUES (?, ?)", &[(Insert, "t")]);
    }

    #[test]
    fn writes_that_touch_other_tables_are_unsupported() {
        assert_eq!(
            pg_err("UPDATE a JOIN b ON a.id = b.id SET a.x = 1"),
            unsupported("UPDATE ... JOIN")
        );
        assert_eq!(
            pg_err("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id"),
            unsupported("multi-table DELETE")
        );
    }

    #[test]
    fn statement_kind_names() {
        for kind in StatementKind::ALL {
            assert_eq!(kind.as_str().parse::<StatementKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(Ddl.as_str(), "ddl");
        assert!("SELECT".parse::<StatementKind>().is_err());
        assert!("drop".parse::<StatementKind>().is_err());
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let too_deep = |sql: String| {
            let err = analyze(&sql, SqlDialect::Postgres).expect_err("too deep");
            assert!(
                matches!(&err, SqlError::Parse(m) if m.contains("nested too deeply")),
                "{err}"
            );
        };
        too_deep(format!("SELECT 1{}", " + 1".repeat(100_000)));
        too_deep(format!(
            "SELECT * FROM t WHERE {}true",
            "a = 1 OR ".repeat(50_000)
        ));
        // The parser builds the chain before it fails, then drops it.
        too_deep(format!("SELECT 1{} +", " + 1".repeat(100_000)));
        too_deep(format!("SELECT (1{}", "::int".repeat(100_000)));
        too_deep(format!("SELECT 1{}", " IS NULL".repeat(100_000)));
        too_deep(format!("SELECT 1{}", "!".repeat(100_000)));
        too_deep(format!("SELECT NULL::int{}", "[]".repeat(100_000)));
        too_deep(format!(
            "SELECT 1, 2{}",
            " UNION SELECT 1, 2".repeat(50_000)
        ));
        // Short chains add up across brackets: 45 levels of 22 additions each.
        let level = format!("({}", "1 + ".repeat(22));
        too_deep(format!("SELECT {}1{}", level.repeat(45), ")".repeat(45)));
        // sqlparser's own recursion limit covers bracket nesting.
        assert!(matches!(
            pg_err(&format!(
                "SELECT {}1{}",
                "(".repeat(10_000),
                ")".repeat(10_000)
            )),
            SqlError::Parse(_)
        ));
    }

    #[test]
    fn long_flat_statements_are_fine() {
        let rows = vec!["($1::uuid, 'x', 2.5, NULL)"; 5_000].join(", ");
        pg_needs(&format!("INSERT INTO t VALUES {rows}"), &[(Insert, "t")]);
        let ids = vec!["$1::bigint"; 5_000].join(", ");
        pg_needs(
            &format!("SELECT * FROM t WHERE id IN ({ids})"),
            &[(Select, "t")],
        );
        let conditions = vec!["status = 'x'"; 200].join(" OR ");
        pg_needs(
            &format!("SELECT * FROM t WHERE {conditions}"),
            &[(Select, "t")],
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let mut inputs: Vec<String> = [
            "",
            ";",
            ";;;",
            "SELECT",
            "SELECT (",
            ")))",
            "SELECT * FROM",
            "WITH",
            "WITH a AS (",
            "INSERT INTO",
            "'",
            "\"",
            "$$",
            "/*",
            "--",
            "\0",
            "SELECT \0 FROM t",
            "SELECT 'é' FROM 表",
            "U&\"\"",
            "SELECT * FROM t WHERE a = $",
            "DROP",
            "CREATE TABLE",
            "ALTER TABLE t",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push("(".repeat(100_000));
        inputs.push(format!("SELECT {}", "(".repeat(100_000)));
        inputs.push(format!("SELECT {}", "[".repeat(100_000)));
        inputs.push(format!(
            "SELECT * FROM {}",
            "(SELECT * FROM ".repeat(10_000)
        ));
        inputs.push("NOT ".repeat(100_000));
        // A fixed pseudo-random generator keeps the inputs the same on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "SELECT FROM WHERE ()[],;.'\"$?:+-*/|&!~<>=_ab1\\\n\t\r é"
            .chars()
            .collect();
        for _ in 0..300 {
            let len = (next() % 64) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            inputs.push(text);
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for input in &inputs {
            for dialect in [SqlDialect::Postgres, SqlDialect::Sqlite] {
                let _ = analyze(input, dialect);
            }
        }
        assert!(matches!(pg_err("SELECT"), SqlError::Parse(_)));
        assert!(matches!(pg_err("SELECT * FROM"), SqlError::Parse(_)));
    }

    #[test]
    fn cache_returns_the_same_analysis() {
        let cache = AnalysisCache::default();
        let sql = "SELECT * FROM invoices WHERE id = $1";
        let first = cache.analyze(sql, SqlDialect::Postgres).unwrap();
        let second = cache.analyze(sql, SqlDialect::Postgres).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.needs, set(&[(Select, "invoices")]));

        // Each dialect has its own entry.
        let sqlite = cache.analyze(sql, SqlDialect::Sqlite).unwrap();
        assert!(!Arc::ptr_eq(&first, &sqlite));

        assert_eq!(
            cache.analyze("SELECT pg_sleep(1)", SqlDialect::Postgres),
            Err(forbidden("pg_sleep"))
        );
        assert_eq!(
            cache.analyze("SELECT pg_sleep(1)", SqlDialect::Postgres),
            Err(forbidden("pg_sleep"))
        );
    }

    #[test]
    fn cache_stays_bounded() {
        let cache = AnalysisCache::new(2);
        let a = cache
            .analyze("SELECT * FROM a", SqlDialect::Postgres)
            .unwrap();
        cache
            .analyze("SELECT * FROM b", SqlDialect::Postgres)
            .unwrap();
        // Full: the next insert starts over, so `a` is analyzed afresh.
        cache
            .analyze("SELECT * FROM c", SqlDialect::Postgres)
            .unwrap();
        let again = cache
            .analyze("SELECT * FROM a", SqlDialect::Postgres)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &again));
        assert_eq!(again.needs, set(&[(Select, "a")]));

        let uncached = AnalysisCache::new(0);
        let first = uncached.analyze("SELECT 1", SqlDialect::Sqlite).unwrap();
        let second = uncached.analyze("SELECT 1", SqlDialect::Sqlite).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first, second);
    }

    #[test]
    fn cache_is_shared_across_threads() {
        let cache = Arc::new(AnalysisCache::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    cache
                        .analyze("DELETE FROM t WHERE id = $1", SqlDialect::Postgres)
                        .unwrap()
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap().needs, set(&[(Delete, "t")]));
        }
    }
}
