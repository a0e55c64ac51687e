//! The CLI's output layer: pure functions from Kubernetes JSON objects to the
//! text `ferry get`, `ferry describe` and `ferry explain` print, matching kubectl.
//! Each kind's columns and cells, ages, and the small JSON readers live in
//! [`ferry_api::printers`], shared with the API server's Table answers.
//!
//! Layout:
//! - [`table`](mod@table): `get` rows per kind and their alignment.
//! - [`describe`](mod@describe): `describe` text per kind.
//! - [`explain`](mod@explain): field documentation from the OpenAPI schemas.
//! - [`jsonpath`]: `-o jsonpath=TEMPLATE`.

pub mod describe;
pub mod explain;
pub mod jsonpath;
pub mod table;

pub use table::{render_table, table};

use ferry_api::printers::text;
use ferry_api::resources::Resource;
use jiff::Timestamp;
use serde_json::Value;

/// Options of the `get` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`: the kind's extra columns.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first (namespaced kinds only).
    pub namespace_column: bool,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
    /// `--no-headers`: no header row.
    pub no_headers: bool,
}

/// The `-o` formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// The kind's table (no `-o`).
    #[default]
    Table,
    /// `-o wide`: the table with its extra columns.
    Wide,
    /// `-o json`, indented by 4 like kubectl.
    Json,
    /// `-o yaml`, one document.
    Yaml,
    /// `-o name`: `kind.group/name` per object.
    Name,
}

impl std::str::FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wide" => Ok(Output::Wide),
            "json" => Ok(Output::Json),
            "yaml" => Ok(Output::Yaml),
            "name" => Ok(Output::Name),
            _ => Err(format!(
                "unable to match a printer suitable for the output format {s:?}, allowed formats are: json,name,wide,yaml"
            )),
        }
    }
}

/// What `get` fetched: one named object, or a list (kubectl prints a `List`
/// for a listing even when it holds one object).
#[derive(Debug, Clone, Copy)]
pub enum Items<'a> {
    /// `ferry get deploy web`.
    One(&'a Value),
    /// `ferry get deploy`, or several names.
    List(&'a [Value]),
}

impl<'a> Items<'a> {
    fn as_slice(&self) -> &'a [Value] {
        match *self {
            Items::One(v) => std::slice::from_ref(v),
            Items::List(l) => l,
        }
    }
}

/// The text `ferry get` prints for `items` in `output` (no final newline;
/// empty for an empty table, where the caller says [`no_resources`]).
pub fn format(
    res: &Resource,
    items: Items<'_>,
    output: Output,
    opts: &TableOptions,
    now: Timestamp,
) -> String {
    let whole = || match items {
        Items::One(v) => v.clone(),
        Items::List(l) => serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": l,
            "metadata": {"resourceVersion": ""},
        }),
    };
    match output {
        Output::Table | Output::Wide => {
            let opts = TableOptions {
                wide: opts.wide || output == Output::Wide,
                ..*opts
            };
            let slice = items.as_slice();
            if slice.is_empty() {
                return String::new();
            }
            render_table(&table(res, slice, &opts, now))
        }
        Output::Json => json(&whole()),
        Output::Yaml => serde_yaml::to_string(&whole())
            .map(|s| s.trim_end().to_string())
            .unwrap_or_else(|e| format!("error: {e}")),
        Output::Name => items
            .as_slice()
            .iter()
            .map(|o| name(res, o))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `kind.group/name` as `-o name` prints it: `deployment.apps/web`, `pod/x`.
pub fn name(res: &Resource, obj: &Value) -> String {
    let kind = res.kind.to_ascii_lowercase();
    let name = text(obj, "/metadata/name");
    if res.group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{}/{name}", res.group)
    }
}

/// kubectl's message for an empty `get`, to stderr.
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".to_string(),
    }
}

/// JSON indented by 4 spaces, as `kubectl -o json` prints.
fn json(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::resources::by_cli_name;
    use serde_json::json;

    fn objs() -> Vec<Value> {
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}}),
        ]
    }

    #[test]
    fn name_output_is_kind_dot_group_slash_name() {
        let deploy = by_cli_name("deploy").unwrap();
        let out = format(
            deploy,
            Items::List(&objs()),
            Output::Name,
            &TableOptions::default(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(out, "deployment.apps/web\ndeployment.apps/api");
        let pod = json!({"metadata": {"name": "x"}});
        assert_eq!(name(by_cli_name("po").unwrap(), &pod), "pod/x");
    }

    #[test]
    fn one_object_prints_itself_a_listing_prints_a_list() {
        let deploy = by_cli_name("deploy").unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let o = objs();
        let one = format(
            deploy,
            Items::One(&o[0]),
            Output::Json,
            &TableOptions::default(),
            now,
        );
        assert!(
            one.starts_with("{\n    \"apiVersion\": \"apps/v1\",\n    \"kind\": \"Deployment\""),
            "{one}"
        );
        let many: Value = serde_json::from_str(&format(
            deploy,
            Items::List(&o),
            Output::Json,
            &TableOptions::default(),
            now,
        ))
        .unwrap();
        assert_eq!(many["kind"], "List");
        assert_eq!(many["metadata"], json!({"resourceVersion": ""}));
        assert_eq!(many["items"].as_array().unwrap().len(), 2);
        let yaml = format(
            deploy,
            Items::List(&o),
            Output::Yaml,
            &TableOptions::default(),
            now,
        );
        assert!(
            yaml.starts_with("apiVersion: v1\nitems:\n- apiVersion: apps/v1\n"),
            "{yaml}"
        );
        assert!(
            !yaml.contains("---") && yaml.ends_with("resourceVersion: ''"),
            "{yaml}"
        );
    }

    #[test]
    fn output_formats_parse() {
        assert_eq!("wide".parse::<Output>(), Ok(Output::Wide));
        assert!("xml"
            .parse::<Output>()
            .unwrap_err()
            .contains("json,name,wide,yaml"));
    }
}
