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

/// Why a message could not be rendered: the plugin named a bad template, or gave a
/// context the template cannot be rendered with.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0:?} is not a template name")]
    BadName(String),
    #[error("email template `{name}` ({}): {source}", path.display())]
    Read {
        name: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("email template `{name}`: {problem}")]
    Shape { name: String, problem: &'static str },
    #[error("email template `{name}` {part}: {source}")]
    Render {
        name: String,
        part: &'static str,
        source: minijinja::Error,
    },
}

/// Renders `<dir>/<name>.txt`: a `Subject:` line, a blank line, the body; both minijinja
/// templates over `context`, strict about undefined variables.
pub fn render_template(dir: &Path, name: &str, context: &Value) -> Result<Rendered, TemplateError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(TemplateError::BadName(name.to_string()));
    }
    let path = dir.join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
        name: name.to_string(),
        path: path.clone(),
        source,
    })?;
    let shape = |problem: &'static str| TemplateError::Shape {
        name: name.to_string(),
        problem,
    };
    let (head, body) = text
        .split_once("\n\n")
        .ok_or_else(|| shape("expected a `Subject:` line, a blank line, then the body"))?;
    let subject = head
        .strip_prefix("Subject:")
        .ok_or_else(|| shape("the first line must be `Subject: ...`"))?
        .trim();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Plain text mail: nothing to escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let context = crate::template::json_to_value(context);
    let render = |part: &'static str, source: &str| {
        env.render_str(source, &context)
            .map_err(|source| TemplateError::Render {
                name: name.to_string(),
                part,
                source,
            })
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
        let err = render_template(dir.path(), "notice", &json!({"org": "Acme"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("body"), "{err}");
        assert!(render_template(dir.path(), "../etc/passwd", &json!({})).is_err());
    }
}
