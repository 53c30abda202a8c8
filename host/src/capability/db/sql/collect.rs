//! The walk over a parsed statement that collects every (kind, table) pair it needs:
//! write targets, reads, CTE scoping, table functions, and the statements and clauses
//! it refuses along the way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    self, AlterTableOperation, CascadeOption, ColumnDef, ColumnOption, CreateTableLikeKind,
    DropBehavior, Expr, FromTable, Ident, ObjectName, ObjectNamePart, ObjectType, OnConflictAction,
    OnInsert, Query, RenameTableNameKind, Select, SetExpr, SqliteOnConflict, Statement,
    TableConstraint, TableFactor, TableObject, TableWithJoins, Visitor,
};
use sqlparser::keywords::Keyword;

use super::policy::{SQLITE_TABLE_FUNCTIONS, is_forbidden_function};
use super::{SqlDialect, SqlError, StatementKind};

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
pub(super) struct Collector {
    dialect: SqlDialect,
    pub(super) needs: BTreeSet<(StatementKind, String)>,
    /// Names already accounted for (write targets, table functions), by address: the
    /// same text can be a write target in one place and a read in another.
    handled: HashSet<*const ObjectName>,
    /// CTE names each CTE body may refer to, registered by the enclosing query before the
    /// body is visited. Non-recursive CTEs see only the ones defined before them.
    cte_bodies: HashMap<*const Query, Vec<String>>,
    /// CTE names in scope, one entry per query being visited.
    scopes: Vec<Vec<String>>,
    statement_depth: usize,
    pub(super) selects_into: bool,
}

impl Collector {
    pub(super) fn new(dialect: SqlDialect) -> Self {
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
        name_part(folded)
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
            Some(ObjectNamePart::Identifier(ident)) => is_forbidden_function(&ident.value),
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

/// One part of a normalized table name: written double-quoted when it is empty or holds
/// `.` or `"`, so that no two different tables share a normalized name.
pub(super) fn name_part(folded: String) -> String {
    if folded.is_empty() || folded.contains(['.', '"']) {
        format!("\"{}\"", folded.replace('"', "\"\""))
    } else {
        folded
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
