//! The message schemas: Kubernetes' `generated.proto` files (from the
//! `k8s-rs-pb` crate's sources, embedded by `api/build.rs`), parsed once, with every type
//! name resolved as protoc resolves it, and the few messages and fields whose
//! JSON form differs from their protobuf form marked.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::parse::{self, DeclLabel, MessageDecl, ProtoFile};
use super::special::{self, Special};

include!(concat!(env!("OUT_DIR"), "/protos.rs"));

/// The scalar types of protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    fn from_name(name: &str) -> Option<Scalar> {
        Some(match name {
            "double" => Scalar::Double,
            "float" => Scalar::Float,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "uint32" => Scalar::Uint32,
            "uint64" => Scalar::Uint64,
            "sint32" => Scalar::Sint32,
            "sint64" => Scalar::Sint64,
            "fixed32" => Scalar::Fixed32,
            "fixed64" => Scalar::Fixed64,
            "sfixed32" => Scalar::Sfixed32,
            "sfixed64" => Scalar::Sfixed64,
            "bool" => Scalar::Bool,
            "string" => Scalar::String,
            "bytes" => Scalar::Bytes,
            _ => return None,
        })
    }
}

/// A field's (value) type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Type {
    Scalar(Scalar),
    /// A message, by full name without the leading dot.
    Message(String),
}

/// How often a field occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Optional,
    Repeated,
    /// A map with keys of this type; the field's type is the value's.
    Map(Scalar),
}

/// Where a field's value goes in the JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonName {
    Key(String),
    /// Embedded with `json:",inline"` in Go: its fields join the parent's.
    Inline,
}

/// One resolved field.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: String,
    pub json: JsonName,
    pub number: u32,
    pub label: Label,
    pub ty: Type,
}

/// One resolved message; fields sorted by number.
#[derive(Debug)]
pub(crate) struct Message {
    pub name: String,
    pub fields: Vec<Field>,
    pub special: Option<Special>,
}

impl Message {
    /// The field with this number, if the schema knows it.
    #[cfg(test)]
    pub(crate) fn field(&self, number: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &self.fields[i])
    }

    /// The field with this name.
    pub(crate) fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Every message of the embedded files, by full name.
#[derive(Debug)]
pub(crate) struct Schema {
    messages: HashMap<String, Message>,
    packages: HashSet<String>,
}

impl Schema {
    /// The embedded schemas, parsed on first use.
    pub(crate) fn embedded() -> Result<&'static Schema, String> {
        static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let mut schema = Schema::build(FILES)?;
                special::mark(&mut schema)?;
                Ok(schema)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The message with this full name (no leading dot).
    pub(crate) fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// Parses `files` (import path, text) and resolves every type name.
    pub(crate) fn build(files: &[(&str, &str)]) -> Result<Schema, String> {
        let mut parsed = Vec::new();
        for (path, text) in files {
            let file = parse::parse(text).map_err(|e| format!("{path}: {e}"))?;
            parsed.push((*path, file));
        }
        let index = Index::new(&parsed)?;
        let mut messages = HashMap::new();
        for (path, file) in &parsed {
            let visible = index.visible_files(path, file)?;
            for decl in &file.messages {
                index.resolve(path, &file.package, decl, &visible, &mut messages)?;
            }
        }
        let packages = parsed.iter().map(|(_, f)| f.package.clone()).collect();
        Ok(Schema { messages, packages })
    }

    /// Whether some file has this package.
    pub(crate) fn has_package(&self, package: &str) -> bool {
        self.packages.contains(package)
    }

    /// The message, for changing: only while marking specials.
    pub(crate) fn message_mut(&mut self, name: &str) -> Option<&mut Message> {
        self.messages.get_mut(name)
    }

    /// Every message, in no order.
    #[cfg(test)]
    pub(crate) fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }
}

/// The names every file defines, for resolving type names.
struct Index<'a> {
    /// Full message name to the import path of its file.
    defined_in: HashMap<String, &'a str>,
    /// Every package and every prefix of one (`k8s`, `k8s.io`, ...).
    packages: HashSet<String>,
    /// Every file's import path.
    paths: HashSet<&'a str>,
}

impl<'a> Index<'a> {
    fn new(files: &'a [(&'a str, ProtoFile)]) -> Result<Self, String> {
        let mut index = Index {
            defined_in: HashMap::new(),
            packages: HashSet::new(),
            paths: files.iter().map(|(path, _)| *path).collect(),
        };
        for (path, file) in files {
            let mut prefix = String::new();
            for part in file.package.split('.').filter(|p| !p.is_empty()) {
                prefix = join(&prefix, part);
                index.packages.insert(prefix.clone());
            }
            for decl in &file.messages {
                index.define(path, &file.package, decl)?;
            }
        }
        Ok(index)
    }

    fn define(&mut self, path: &'a str, scope: &str, decl: &MessageDecl) -> Result<(), String> {
        let name = join(scope, &decl.name);
        if let Some(other) = self.defined_in.insert(name.clone(), path) {
            return Err(format!("{path}: message {name} is also defined in {other}"));
        }
        decl.nested
            .iter()
            .try_for_each(|nested| self.define(path, &name, nested))
    }

    /// The files whose messages `file` may name: itself and its imports.
    fn visible_files(&self, path: &'a str, file: &'a ProtoFile) -> Result<Vec<&'a str>, String> {
        let mut visible = vec![path];
        for import in &file.imports {
            if !self.paths.contains(import.as_str()) {
                return Err(format!("{path}: imports {import}, which is not embedded"));
            }
            visible.push(import.as_str());
        }
        Ok(visible)
    }

    fn resolve(
        &self,
        path: &str,
        scope: &str,
        decl: &MessageDecl,
        visible: &[&str],
        out: &mut HashMap<String, Message>,
    ) -> Result<(), String> {
        let name = join(scope, &decl.name);
        let mut fields = Vec::new();
        for f in &decl.fields {
            let located = |e: String| format!("{path}:{}: field {name}.{}: {e}", f.line, f.name);
            let ty = self
                .resolve_type(&f.type_name, &name, visible)
                .map_err(located)?;
            let label = match &f.label {
                DeclLabel::Optional => Label::Optional,
                DeclLabel::Repeated => Label::Repeated,
                DeclLabel::Map(key) => match Scalar::from_name(key) {
                    Some(k) if !matches!(k, Scalar::Double | Scalar::Float | Scalar::Bytes) => {
                        Label::Map(k)
                    }
                    _ => return Err(located(format!("map key type {key} is not allowed"))),
                },
            };
            fields.push(Field {
                name: f.name.clone(),
                json: JsonName::Key(f.name.clone()),
                number: f.number,
                label,
                ty,
            });
        }
        fields.sort_by_key(|f| f.number);
        if let Some(pair) = fields.windows(2).find(|w| w[0].number == w[1].number) {
            return Err(format!(
                "{path}: message {name} uses field number {} twice",
                pair[0].number
            ));
        }
        for nested in &decl.nested {
            self.resolve(path, &name, nested, visible, out)?;
        }
        out.insert(
            name.clone(),
            Message {
                name,
                fields,
                special: None,
            },
        );
        Ok(())
    }

    /// Resolves a type name used in message `scope` as protoc does: a leading
    /// dot means fully qualified; otherwise the first component is looked up
    /// from the innermost scope outwards, and the rest must be inside it.
    fn resolve_type(&self, type_name: &str, scope: &str, visible: &[&str]) -> Result<Type, String> {
        if let Some(scalar) = Scalar::from_name(type_name) {
            return Ok(Type::Scalar(scalar));
        }
        let full = if let Some(full) = type_name.strip_prefix('.') {
            full.to_string()
        } else {
            let first = type_name.split('.').next().unwrap_or(type_name);
            let mut scope = Some(scope);
            loop {
                let Some(s) = scope else {
                    return Err(format!("type {type_name} is not defined"));
                };
                let candidate = join(s, first);
                if self.defined_in.contains_key(&candidate) || self.packages.contains(&candidate) {
                    break join(s, type_name);
                }
                scope = if s.is_empty() {
                    None
                } else {
                    Some(s.rsplit_once('.').map_or("", |(parent, _)| parent))
                };
            }
        };
        match self.defined_in.get(&full) {
            Some(file) if visible.contains(file) => Ok(Type::Message(full)),
            Some(file) => Err(format!(
                "type {full} is defined in {file}, which is not imported"
            )),
            None => Err(format!("type {type_name} ({full}) is not defined")),
        }
    }
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses_and_every_type_resolves() {
        for (path, text) in FILES {
            parse::parse(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let schema = Schema::embedded().unwrap();
        for msg in schema.messages() {
            for field in &msg.fields {
                if let Type::Message(name) = &field.ty {
                    assert!(
                        schema.message(name).is_some(),
                        "{}.{}",
                        msg.name,
                        field.name
                    );
                }
            }
        }
        let cm = schema.message("api.core.v1.ConfigMap").unwrap();
        let meta = cm.field(1).unwrap();
        assert_eq!(meta.name, "metadata");
        assert_eq!(
            meta.ty,
            Type::Message("apimachinery.pkg.apis.meta.v1.ObjectMeta".into())
        );
        assert_eq!(
            cm.field_named("binaryData").unwrap().label,
            Label::Map(Scalar::String)
        );
        // The 19 files of Kubernetes 1.33 define 486 messages.
        assert_eq!(schema.messages().count(), 486);
    }

    #[test]
    fn resolves_names_relative_to_package_and_nesting() {
        let files = [
            (
                "a.proto",
                "syntax = \"proto2\"; package p.q; message A { message B { optional int32 n = 1; } optional B b = 1; }",
            ),
            (
                "b.proto",
                r#"syntax = "proto2"; package p.r; import "a.proto";
                message C {
                  message B { optional string s = 1; }
                  optional B own = 1;
                  optional q.A.B theirs = 2;
                  optional .p.q.A absolute = 3;
                  optional p.q.A dotted = 4;
                  map<string, C> children = 5;
                }"#,
            ),
        ];
        let schema = Schema::build(&files).unwrap();
        let c = schema.message("p.r.C").unwrap();
        let types: Vec<_> = c.fields.iter().map(|f| f.ty.clone()).collect();
        let msg = |n: &str| Type::Message(n.into());
        assert_eq!(
            types,
            [
                msg("p.r.C.B"),
                msg("p.q.A.B"),
                msg("p.q.A"),
                msg("p.q.A"),
                msg("p.r.C")
            ]
        );
        assert_eq!(c.field(5).unwrap().label, Label::Map(Scalar::String));
    }

    #[test]
    fn reports_unresolvable_names() {
        let cases = [
            (
                "message M { optional Nope x = 1; }",
                "type Nope is not defined",
            ),
            (
                "message M { optional .y.M z = 1; }",
                "type .y.M (y.M) is not defined",
            ),
            (
                "message M { map<bytes, M> y = 1; }",
                "map key type bytes is not allowed",
            ),
            (
                "message M { optional M a = 1; optional M b = 1; }",
                "uses field number 1 twice",
            ),
        ];
        for (text, want) in cases {
            let text = format!("syntax = \"proto2\"; package x; {text}");
            let err = Schema::build(&[("x.proto", &text)]).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let hidden = [
            ("a.proto", "syntax = \"proto2\"; package a; message A {}"),
            (
                "b.proto",
                "syntax = \"proto2\"; package b; message B { optional a.A x = 1; }",
            ),
        ];
        let err = Schema::build(&hidden).unwrap_err();
        assert!(
            err.contains("defined in a.proto, which is not imported"),
            "{err}"
        );
    }
}
