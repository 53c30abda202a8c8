//! Email templates: `<dir>/<name>.txt` holds a `Subject:` line, a blank line and the
//! body, both minijinja templates rendered strictly (an undefined variable is an error).

use std::path::Path;

use serde_json::Value;

/// A template rendered for one message.
#[derive(Debug)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Renders `<dir>/<name>.txt`: a `Subject:` line, a blank line, the body; both minijinja
/// templates over `context`, strict about undefined variables.
pub fn render_template(dir: &Path, name: &str, context: &Value) -> Result<Rendered, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!("{name:?} is not a template name"));
    }
    let path = dir.join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("email template `{name}` ({}): {e}", path.display()))?;
    let (head, body) = text.split_once("\n\n").ok_or_else(|| {
        format!("email template `{name}`: expected a `Subject:` line, a blank line, then the body")
    })?;
    let subject = head
        .strip_prefix("Subject:")
        .ok_or_else(|| format!("email template `{name}`: the first line must be `Subject: ...`"))?
        .trim();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Plain text mail: nothing to escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let context = crate::template::json_to_value(context);
    let render = |what: &str, source: &str| {
        env.render_str(source, &context)
            .map_err(|e| format!("email template `{name}` {what}: {e}"))
    };
    Ok(Rendered {
        subject: render("subject", subject)?.replace(['\r', '\n'], " "),
        body: render("body", body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_subject_and_body_strictly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("notice.txt"),
            "Subject: Payment failed for {{ org }}\n\nHello {{ name }},\nyour card was declined.\n",
        )
        .unwrap();
        let ok =
            render_template(dir.path(), "notice", &json!({"org": "Acme", "name": "Ann"})).unwrap();
        assert_eq!(ok.subject, "Payment failed for Acme");
        assert_eq!(ok.body, "Hello Ann,\nyour card was declined.");
        let err = render_template(dir.path(), "notice", &json!({"org": "Acme"})).unwrap_err();
        assert!(err.contains("body"), "{err}");
        assert!(render_template(dir.path(), "../etc/passwd", &json!({})).is_err());
    }
}
