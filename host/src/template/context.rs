//! The template context of a run (`params`, `steps.<id>.output|status`, `run`), kept in
//! minijinja's own form: each value is converted once, when it becomes known, so rendering
//! a step's input costs the same at step 500 as at step 2.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::value::json_to_value;

/// What templates can be rendered against: a run's [`RunContext`], or plain JSON (tests,
/// one-off renders such as the concurrency key).
pub trait TemplateContext {
    fn template_value(&self) -> minijinja::Value;
}

impl TemplateContext for Value {
    fn template_value(&self) -> minijinja::Value {
        json_to_value(self)
    }
}

#[derive(Debug, Clone)]
pub struct RunContext {
    params: minijinja::Value,
    /// `{"output": .., "status": ..}` per finished step id.
    steps: BTreeMap<String, minijinja::Value>,
    /// `id`, `dry_run`, `operator`, `attempt`: small, converted on every render.
    run: Map<String, Value>,
}

impl RunContext {
    pub fn new(params: &Value, run_id: &str, dry_run: bool, operator: &str) -> RunContext {
        let mut run = Map::new();
        run.insert("id".into(), Value::from(run_id));
        run.insert("dry_run".into(), Value::from(dry_run));
        run.insert("operator".into(), Value::from(operator));
        run.insert("attempt".into(), Value::from(1));
        RunContext {
            params: json_to_value(params),
            steps: BTreeMap::new(),
            run,
        }
    }

    /// Records what a finished step produced (`output` null when it has none).
    pub fn set_step(&mut self, id: &str, output: &Value, status: &str) {
        let value = minijinja::Value::from_pairs([
            ("output", json_to_value(output)),
            ("status", minijinja::Value::from(status)),
        ]);
        self.steps.insert(id.to_string(), value);
    }

    /// `run.attempt` for the attempt about to be rendered.
    pub fn set_attempt(&mut self, attempt: u32) {
        self.run.insert("attempt".into(), Value::from(attempt));
    }
}

impl TemplateContext for RunContext {
    fn template_value(&self) -> minijinja::Value {
        let steps = minijinja::Value::from_pairs(
            self.steps
                .iter()
                .map(|(id, value)| (id.as_str(), value.clone())),
        );
        let run = Value::Object(self.run.clone());
        minijinja::Value::from_pairs([
            ("params", self.params.clone()),
            ("steps", steps),
            ("run", json_to_value(&run)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Templates;
    use serde_json::json;

    #[test]
    fn renders_like_the_json_context_it_replaces() {
        let params = json!({ "org": 42, "tiers": ["pro"] });
        let mut ctx = RunContext::new(&params, "run-1", false, "ops@example.com");
        ctx.set_step("assess", &json!({ "ids": [1, 2] }), "succeeded");
        ctx.set_attempt(3);
        let json_ctx = json!({
            "params": params,
            "steps": { "assess": { "output": { "ids": [1, 2] }, "status": "succeeded" } },
            "run": { "id": "run-1", "dry_run": false, "operator": "ops@example.com", "attempt": 3 },
        });
        let t = Templates::new();
        let input = json!({
            "ids": "{{ steps.assess.output.ids }}",
            "org": "{{ params.org }}",
            "note": "attempt {{ run.attempt }} by {{ run.operator }}",
            "ok": "{{ steps.assess.status == 'succeeded' }}",
        });
        assert_eq!(
            t.render_input(&input, &ctx).unwrap(),
            t.render_input(&input, &json_ctx).unwrap()
        );
        assert!(t.eval_condition("steps.assess.output.ids", &ctx).unwrap());
        assert!(t.eval_condition("steps.missing", &ctx).is_err());
    }
}
