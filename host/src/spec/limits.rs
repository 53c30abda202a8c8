//! The limits table shared by `runbook.toml`'s `[limits]` and a step's `[steps.limits]`:
//! one raw shape, one validation, and how a step's overrides lay over the defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diagnostic::Diagnostics;
use super::values::{self, RawSize};
use crate::runtime::StepLimits;

/// Plugin memory may not be set past this (MiB).
pub const MEMORY_MB_MAX: i64 = 4096;

/// A limits table as written. Every key is optional: what is missing comes from the
/// level below (a step's table from `[limits]`, `[limits]` from the built-in defaults).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLimits {
    pub timeout: Option<Spanned<String>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub fuel: Option<Spanned<i64>>,
    pub max_result_rows: Option<Spanned<i64>>,
    pub max_result_bytes: Option<Spanned<RawSize>>,
    pub max_statement_bytes: Option<Spanned<RawSize>>,
    pub max_param_bytes: Option<Spanned<RawSize>>,
    pub max_params_bytes: Option<Spanned<RawSize>>,
    pub max_log_bytes: Option<Spanned<RawSize>>,
    pub max_audit_entries: Option<Spanned<i64>>,
    pub max_audit_bytes: Option<Spanned<RawSize>>,
}

/// Validated limits, each `None` where the table left it to the level below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LimitOverrides {
    pub timeout: Option<Duration>,
    pub memory_mb: Option<u64>,
    pub fuel: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_statement_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_param_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_params_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_log_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_audit_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_audit_bytes: Option<u64>,
}

/// Validates a limits table; each problem is reported at its value.
pub(crate) fn overrides(raw: &RawLimits, diags: &mut Diagnostics) -> LimitOverrides {
    let size = |v: &Option<Spanned<RawSize>>, key: &str, diags: &mut Diagnostics| {
        v.as_ref().and_then(|v| values::size(v, key, diags))
    };
    let count = |v: &Option<Spanned<i64>>, key: &str, diags: &mut Diagnostics| {
        v.as_ref().and_then(|v| positive(v, key, i64::MAX, diags))
    };
    LimitOverrides {
        timeout: raw.timeout.as_ref().and_then(|t| timeout(t, diags)),
        memory_mb: raw
            .memory_mb
            .as_ref()
            .and_then(|m| positive(m, "memory_mb", MEMORY_MB_MAX, diags)),
        fuel: count(&raw.fuel, "fuel", diags),
        max_result_rows: count(&raw.max_result_rows, "max_result_rows", diags),
        max_result_bytes: size(&raw.max_result_bytes, "max_result_bytes", diags),
        max_statement_bytes: size(&raw.max_statement_bytes, "max_statement_bytes", diags),
        max_param_bytes: size(&raw.max_param_bytes, "max_param_bytes", diags),
        max_params_bytes: size(&raw.max_params_bytes, "max_params_bytes", diags),
        max_log_bytes: size(&raw.max_log_bytes, "max_log_bytes", diags),
        max_audit_entries: count(&raw.max_audit_entries, "max_audit_entries", diags),
        max_audit_bytes: size(&raw.max_audit_bytes, "max_audit_bytes", diags),
    }
}

/// The step-level timeout's wording, kept from before limits had a table.
pub(crate) fn timeout(t: &Spanned<String>, diags: &mut Diagnostics) -> Option<Duration> {
    values::parse_duration(t.get_ref())
        .map_err(|reason| {
            diags.error_with_help(
                t.span(),
                format!("invalid timeout {:?}: {reason}", t.get_ref()),
                "write a whole number and a unit (ms, s or m), like \"500ms\", \"30s\" or \"2m\"",
            )
        })
        .ok()
}

/// A whole number in `1..=max`.
pub(crate) fn positive(
    v: &Spanned<i64>,
    key: &str,
    max: i64,
    diags: &mut Diagnostics,
) -> Option<u64> {
    let n = *v.get_ref();
    if (1..=max).contains(&n) {
        return Some(n.unsigned_abs());
    }
    let message = if max == i64::MAX {
        format!("`{key}` must be positive, found {n}")
    } else {
        format!("`{key}` must be between 1 and {max}, found {n}")
    };
    diags.error(v.span(), message);
    None
}

impl LimitOverrides {
    /// These overrides over `base`.
    pub fn apply(&self, base: StepLimits) -> StepLimits {
        StepLimits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self
                .memory_mb
                .map_or(base.memory_bytes, |mb| (mb as usize) << 20),
            timeout: self.timeout.unwrap_or(base.timeout),
            max_result_rows: self.max_result_rows.unwrap_or(base.max_result_rows),
            max_result_bytes: self.max_result_bytes.unwrap_or(base.max_result_bytes),
            max_statement_bytes: self.max_statement_bytes.unwrap_or(base.max_statement_bytes),
            max_param_bytes: self.max_param_bytes.unwrap_or(base.max_param_bytes),
            max_params_bytes: self.max_params_bytes.unwrap_or(base.max_params_bytes),
            max_log_bytes: self.max_log_bytes.unwrap_or(base.max_log_bytes),
            max_audit_entries: self.max_audit_entries.unwrap_or(base.max_audit_entries),
            max_audit_bytes: self.max_audit_bytes.unwrap_or(base.max_audit_bytes),
        }
    }
}
