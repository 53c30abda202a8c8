//! The preflight's check of what the target database does implicitly: each step's (and
//! rollback's) `db` grant must cover the cascades, triggers, rules and view writes its
//! granted writes cause (see `capability::db::implied`). The catalog is read once per
//! run, and only when some grant writes; a refusal is audited and nothing runs.

use serde_json::json;

use super::{ExecError, Executor};
use crate::capability::{DbGrant, ImpliedEffects};
use crate::spec::runbook::Runbook;

impl Executor<'_> {
    pub(super) async fn check_implied(
        &self,
        runbook: &Runbook,
        operator: &str,
    ) -> Result<(), ExecError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let grants: Vec<_> = runbook
            .steps
            .iter()
            .flat_map(|step| {
                let main = (!step.plugin.is_empty()).then_some((step, &step.plugin, &step.grants));
                let undo = step.rollback.as_ref().map(|r| (step, &r.plugin, &r.grants));
                main.into_iter().chain(undo)
            })
            .filter_map(|(step, plugin, grants)| {
                grants
                    .db
                    .as_ref()
                    .filter(|g| writes(g))
                    .map(|g| (step, plugin, g))
            })
            .collect();
        if grants.is_empty() {
            return Ok(());
        }
        let effects = ImpliedEffects::load(target)
            .await
            .map_err(ExecError::Implied)?;
        for (step, plugin, grant) in grants {
            let needs = effects.not_granted(grant);
            if needs.is_empty() {
                continue;
            }
            let detail = json!({
                "runbook": runbook.name,
                "step": step.id,
                "implied_not_granted": needs,
            });
            self.audit_refusal(operator, step, plugin, None, detail)
                .await?;
            return Err(ExecError::ImpliedNotGranted {
                step: step.id.clone(),
                needs,
            });
        }
        Ok(())
    }
}

/// Whether a grant allows any write (only writes have implicit effects).
fn writes(grant: &DbGrant) -> bool {
    !(grant.insert.is_empty()
        && grant.update.is_empty()
        && grant.delete.is_empty()
        && grant.ddl.is_empty())
}
