//! Organizations and the people billing mail goes to: the billing email, and the owners
//! and admins ("owners and admins get billing notifications").

use runbook_sdk::{Failure, db, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub plan_tier: String,
    pub billing_email: String,
    pub stripe_customer_id: Option<String>,
}

/// The organization `id`; a `precondition` failure if there is none.
///
/// Touches: select `organizations`.
pub fn organization(id: i64) -> Result<Organization, Failure> {
    let rows = db::query(
        "SELECT id, name, plan_tier, billing_email, stripe_customer_id \
         FROM organizations WHERE id = $1",
        params![id],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| Failure::precondition(format!("organization {id} does not exist")))?;
    Ok(Organization {
        id: row.get("id")?,
        name: row.get("name")?,
        plan_tier: row.get("plan_tier")?,
        billing_email: row.get("billing_email")?,
        stripe_customer_id: row.get("stripe_customer_id")?,
    })
}

/// The emails of the organization's owners, then admins, in the order they joined.
///
/// Touches: select `organization_members`.
pub fn admin_emails(organization_id: i64) -> Result<Vec<String>, Failure> {
    let rows = db::query(
        "SELECT email FROM organization_members \
         WHERE organization_id = $1 AND role IN ('owner', 'admin') \
         ORDER BY CASE role WHEN 'owner' THEN 0 ELSE 1 END, id",
        params![organization_id],
    )?;
    let mut emails: Vec<String> = Vec::new();
    for row in &rows {
        let email: String = row.get("email")?;
        if !emails.contains(&email) {
            emails.push(email);
        }
    }
    Ok(emails)
}

/// Whom to tell about a change to the organization's plan: its owners and admins, or its
/// billing email when it has none.
///
/// Touches: select `organization_members`.
pub fn plan_recipients(org: &Organization) -> Result<Vec<String>, Failure> {
    let admins = admin_emails(org.id)?;
    Ok(if admins.is_empty() {
        vec![org.billing_email.clone()]
    } else {
        admins
    })
}
