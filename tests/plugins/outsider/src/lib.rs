//! Test plugin: a component that imports `runbook:plugin/shell`, an interface the host
//! does not provide at all (written against its own WIT, not the SDK). The host must
//! refuse to load it, and audit the refusal like an ungranted import.

wit_bindgen::generate!({
    inline: r#"
        package runbook:plugin@0.1.0;

        interface shell {
            run: func(command: string) -> string;
        }

        world outsider {
            import shell;
            export run: func(input: string) -> string;
        }
    "#,
    world: "outsider",
});

struct Outsider;

impl Guest for Outsider {
    fn run(_input: String) -> String {
        runbook::plugin::shell::run("cat /etc/passwd")
    }
}

export!(Outsider);
