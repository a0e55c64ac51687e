//! Table tests over bytes built as Go's encoder writes them: every plain
//! (non-pointer) field present even when empty, fields in number order.

use serde_json::{json, Value};

use super::decode::{Decoder, MAX_DEPTH};
use super::schema::Schema;
use super::{decode_object, ProtobufError, MAGIC};

/// A protobuf message under construction.
#[derive(Clone, Default)]
struct Pb(Vec<u8>);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Pb {
    fn new() -> Self {
        Pb(Vec::new())
    }
    fn tag(mut self, field: u32, wire: u8) -> Self {
        put_varint(&mut self.0, u64::from(field) << 3 | u64::from(wire));
        self
    }
    fn int(self, field: u32, v: i64) -> Self {
        let mut pb = self.tag(field, 0);
        put_varint(&mut pb.0, v as u64);
        pb
    }
    fn bool(self, field: u32, v: bool) -> Self {
        self.int(field, i64::from(v))
    }
    fn bytes(self, field: u32, b: &[u8]) -> Self {
        let mut pb = self.tag(field, 2);
        put_varint(&mut pb.0, b.len() as u64);
        pb.0.extend_from_slice(b);
        pb
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }
    fn map_str(self, field: u32, key: &str, value: &str) -> Self {
        self.msg(field, Pb::new().str(1, key).str(2, value))
    }
    fn map_msg(self, field: u32, key: &str, value: Pb) -> Self {
        self.msg(field, Pb::new().str(1, key).msg(2, value))
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// `ObjectMeta` of a new object as Go writes it.
fn go_meta(name: &str, namespace: &str) -> Pb {
    let empty = Pb::new();
    Pb::new()
        .str(1, name)
        .str(2, "")
        .str(3, namespace)
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, empty)
}

fn quantity(s: &str) -> Pb {
    Pb::new().str(1, s)
}

fn int_or_int(i: i64) -> Pb {
    Pb::new().int(1, 0).int(2, i).str(3, "")
}

fn int_or_str(s: &str) -> Pb {
    Pb::new().int(1, 1).int(2, 0).str(3, s)
}

/// A body: magic and envelope around `raw`, as Go writes it.
fn envelope(api_version: &str, kind: &str, raw: &Pb) -> Vec<u8> {
    let type_meta = Pb::new().str(1, api_version).str(2, kind);
    let unknown = Pb::new()
        .msg(1, type_meta)
        .bytes(2, &raw.0)
        .str(3, "")
        .str(4, "");
    [&MAGIC[..], &unknown.0].concat()
}

/// A body whose `raw` ends it, and the offset where `raw` starts.
fn envelope_at_end(api_version: &str, kind: &str, raw: &Pb) -> (Vec<u8>, usize) {
    let type_meta = Pb::new().str(1, api_version).str(2, kind);
    let unknown = Pb::new().msg(1, type_meta).bytes(2, &raw.0);
    let body = [&MAGIC[..], &unknown.0].concat();
    let at = body.len() - raw.0.len();
    (body, at)
}

fn configmap() -> (Vec<u8>, Value) {
    let meta = go_meta("settings", "default")
        .map_str(11, "app", "web")
        .map_str(11, "tier", "");
    let raw = Pb::new()
        .msg(1, meta)
        .map_str(2, "mode", "fast")
        .map_str(2, "empty", "")
        .msg(3, Pb::new().str(1, "blob").bytes(2, &[0, 1, 2, 0xff]))
        .msg(3, Pb::new().str(1, "nothing").bytes(2, b""));
    let want = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "default",
                        "labels": {"app": "web", "tier": ""}
        },
        "data": {"mode": "fast", "empty": ""},
        "binaryData": {"blob": "AAEC/w==", "nothing": ""}
    });
    (envelope("v1", "ConfigMap", &raw), want)
}

fn secret() -> (Vec<u8>, Value) {
    let raw = Pb::new()
        .msg(1, go_meta("creds", "prod"))
        .msg(2, Pb::new().str(1, "password").bytes(2, b"hunter2"))
        .str(3, "Opaque");
    let want = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "prod"},
        "data": {"password": "aHVudGVyMg=="},
        "type": "Opaque"
    });
    (envelope("v1", "Secret", &raw), want)
}

fn deployment() -> (Vec<u8>, Value) {
    let labels = || Pb::new().map_str(11, "app", "web");
    let resources =
        Pb::new()
            .map_msg(1, "cpu", quantity("500m"))
            .map_msg(1, "memory", quantity("128Mi"));
    let env_from_configmap = Pb::new().msg(
        3,
        Pb::new()
            .msg(1, Pb::new().str(1, "settings"))
            .str(2, "mode")
            .bool(3, false),
    );
    let probe = Pb::new()
        .msg(
            1,
            Pb::new().msg(
                2,
                Pb::new()
                    .str(1, "/healthz")
                    .msg(2, int_or_int(8080))
                    .str(3, "")
                    .str(4, "HTTP"),
            ),
        )
        .int(2, 0)
        .int(3, 1);
    let container = Pb::new()
        .str(1, "web")
        .str(2, "nginx:1.27")
        .msg(
            6,
            Pb::new()
                .str(1, "")
                .int(2, 0)
                .int(3, 80)
                .str(4, "TCP")
                .str(5, ""),
        )
        .msg(7, Pb::new().str(1, "LEVEL").str(2, "debug"))
        .msg(
            7,
            Pb::new()
                .str(1, "MODE")
                .str(2, "")
                .msg(3, env_from_configmap),
        )
        .msg(8, resources)
        .msg(10, probe)
        .str(13, "")
        .bool(18, false);
    let volume = Pb::new().str(1, "config").msg(
        2,
        Pb::new().msg(19, Pb::new().msg(1, Pb::new().str(1, "settings"))),
    );
    let pod_spec = Pb::new()
        .msg(1, volume)
        .msg(2, container)
        .str(3, "")
        .bool(11, false)
        .bool(21, false);
    let template = Pb::new().msg(1, labels()).msg(2, pod_spec);
    let strategy = Pb::new()
        .str(1, "RollingUpdate")
        .msg(2, Pb::new().msg(1, int_or_int(1)).msg(2, int_or_str("25%")));
    let spec = Pb::new()
        .int(1, 0)
        .msg(2, Pb::new().map_str(1, "app", "web"))
        .msg(3, template)
        .msg(4, strategy)
        .int(5, 0)
        .bool(7, false);
    let raw = Pb::new()
        .msg(1, go_meta("web", "").map_str(11, "app", "web"))
        .msg(2, spec)
        .msg(3, Pb::new());
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [{"name": "config", "configMap": {"name": "settings"}}],
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "LEVEL", "value": "debug"},
                            {"name": "MODE", "valueFrom": {"configMapKeyRef": {
                                "name": "settings", "key": "mode", "optional": false
                            }}}
                        ],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                            "timeoutSeconds": 1
                        }
                    }],
                    "automountServiceAccountToken": false
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}
            }
        },
        "status": {}
    });
    (envelope("apps/v1", "Deployment", &raw), want)
}

fn pod() -> (Vec<u8>, Value) {
    let meta = Pb::new()
        .str(1, "runner")
        .msg(8, Pb::new().int(1, 1_704_164_645).int(2, 999))
        .msg(9, Pb::new())
        .str(14, "example.com/cleanup")
        .str(14, "");
    let security = Pb::new().int(4, 1000).bytes(4, &[0xd0, 0x0f, 0x01]);
    let spec = Pb::new()
        .msg(
            2,
            Pb::new()
                .str(1, "main")
                .str(2, "busybox")
                .str(3, "sh")
                .str(3, "")
                .str(4, "-c"),
        )
        .str(3, "Never")
        .msg(14, security)
        .msg(7, Pb::new().str(1, "disk").str(2, "ssd"));
    let raw = Pb::new()
        .msg(1, meta)
        .msg(2, spec)
        .msg(3, Pb::new().str(1, "Pending"));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "runner",
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "finalizers": ["example.com/cleanup", ""]
        },
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", ""], "args": ["-c"]}],
            "restartPolicy": "Never",
            "nodeSelector": {"disk": "ssd"},
            "securityContext": {"supplementalGroups": [1000, 2000, 1]}
        },
        "status": {"phase": "Pending"}
    });
    (envelope("v1", "Pod", &raw), want)
}

fn self_subject_access_review() -> (Vec<u8>, Value) {
    let attributes = Pb::new()
        .str(1, "default")
        .str(2, "create")
        .str(3, "")
        .str(4, "")
        .str(5, "pods")
        .str(6, "")
        .str(7, "");
    let raw = Pb::new()
        .msg(1, go_meta("", ""))
        .msg(2, Pb::new().msg(1, attributes))
        .msg(
            3,
            Pb::new()
                .bool(1, false)
                .str(2, "")
                .str(3, "")
                .bool(4, false),
        );
    let want = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {"allowed": false}
    });
    (
        envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", &raw),
        want,
    )
}

fn token_request() -> (Vec<u8>, Value) {
    let bound = Pb::new()
        .str(1, "Pod")
        .str(2, "v1")
        .str(3, "runner")
        .str(4, "8d3c");
    let spec = Pb::new()
        .str(1, "https://kubernetes.default.svc")
        .msg(3, bound)
        .int(4, 3600);
    let raw = Pb::new()
        .msg(1, go_meta("builder", "ci"))
        .msg(2, spec)
        .msg(3, Pb::new().str(1, "").msg(2, Pb::new()));
    let want = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": "builder", "namespace": "ci"},
        "spec": {
            "audiences": ["https://kubernetes.default.svc"],
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "runner", "uid": "8d3c"}
        },
        "status": {}
    });
    (
        envelope("authentication.k8s.io/v1", "TokenRequest", &raw),
        want,
    )
}

fn delete_options(api_version: &str) -> (Vec<u8>, Value) {
    let raw = Pb::new().int(1, 0).str(4, "Foreground").str(5, "All");
    let want = json!({
        "apiVersion": api_version,
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"]
    });
    (envelope(api_version, "DeleteOptions", &raw), want)
}

fn lease() -> (Vec<u8>, Value) {
    let spec = Pb::new()
        .str(1, "node-1")
        .int(2, 40)
        .msg(3, Pb::new().int(1, 1_704_164_645).int(2, 123_456_789))
        .msg(4, Pb::new());
    let raw = Pb::new()
        .msg(1, go_meta("node-1", "kube-node-lease"))
        .msg(2, spec);
    let want = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "acquireTime": "2024-01-02T03:04:05.123456Z"
        }
    });
    (envelope("coordination.k8s.io/v1", "Lease", &raw), want)
}

fn controller_revision() -> (Vec<u8>, Value) {
    let raw = Pb::new()
        .msg(1, go_meta("rev-1", "default"))
        .msg(2, Pb::new().bytes(1, br#"{"spec":{"template":{}}}"#))
        .int(3, 1);
    let want_revision = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "rev-1", "namespace": "default"},
        "data": {"spec": {"template": {}}},
        "revision": 1
    });
    (
        envelope("apps/v1", "ControllerRevision", &raw),
        want_revision,
    )
}

fn list_of_raw_objects() -> (Vec<u8>, Value) {
    let inner = envelope(
        "v1",
        "ConfigMap",
        &Pb::new().msg(1, Pb::new().str(1, "inner")),
    );
    let raw = Pb::new()
        .msg(1, Pb::new().str(2, "17"))
        .msg(
            2,
            Pb::new().bytes(1, br#"{"kind":"Pod","apiVersion":"v1"}"#),
        )
        .msg(2, Pb::new().bytes(1, &inner))
        .msg(2, Pb::new());
    let want = json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": "17"},
        "items": [
            {"kind": "Pod", "apiVersion": "v1"},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}},
            null
        ]
    });
    (envelope("v1", "List", &raw), want)
}

fn subject_access_review() -> (Vec<u8>, Value) {
    let extra = Pb::new()
        .str(1, "scopes")
        .msg(2, Pb::new().str(1, "read").str(1, "write"));
    let spec = Pb::new()
        .msg(2, Pb::new().str(1, "/healthz").str(2, "get"))
        .str(3, "jane")
        .str(4, "admins")
        .msg(5, extra)
        .msg(5, Pb::new().str(1, "none").msg(2, Pb::new()));
    let raw = Pb::new().msg(2, spec);
    let want = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
            "user": "jane",
            "groups": ["admins"],
            "extra": {"scopes": ["read", "write"], "none": []}
        }
    });
    (
        envelope("authorization.k8s.io/v1", "SubjectAccessReview", &raw),
        want,
    )
}

/// Unknown field numbers (varint, bytes, fixed, a group) are skipped; a
/// repeated singular message merges; the last singular scalar wins.
fn wire_rules() -> (Vec<u8>, Value) {
    let raw = Pb::new()
        .int(999, 7)
        .msg(1, Pb::new().str(1, "first").map_str(11, "a", "1"))
        .str(998, "ignored")
        .raw(&[0x9d, 0x3e, 1, 2, 3, 4]) // field 995, fixed32
        .raw(&[0x9b, 0x3e, 0x08, 0x01, 0x9c, 0x3e]) // field 995, a group
        .msg(1, Pb::new().str(3, "ns").map_str(11, "b", "2"))
        .bool(4, true)
        .bool(4, false)
        .msg(1, Pb::new().str(1, "last"));
    let want = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "last", "namespace": "ns", "labels": {"a": "1", "b": "2"}},
        "immutable": false
    });
    (envelope("v1", "ConfigMap", &raw), want)
}

#[test]
fn decodes_objects_as_kubernetes_does() {
    let cases = [
        ("configmap", configmap()),
        ("secret", secret()),
        ("deployment", deployment()),
        ("pod", pod()),
        ("self subject access review", self_subject_access_review()),
        ("token request", token_request()),
        ("v1 delete options", delete_options("v1")),
        ("meta delete options", delete_options("meta.k8s.io/v1")),
        ("lease", lease()),
        ("controller revision", controller_revision()),
        ("list of raw objects", list_of_raw_objects()),
        ("subject access review", subject_access_review()),
        ("wire rules", wire_rules()),
    ];
    for (name, (body, want)) in cases {
        let got = decode_object(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}:\n{got:#}");
    }
}

/// A special message decoded on its own.
fn decode_as(name: &str, pb: &Pb) -> Result<Option<Value>, ProtobufError> {
    let schema = Schema::embedded().unwrap();
    Decoder { schema }.message(schema.message(name).unwrap(), &pb.0, 0, 0)
}

#[test]
fn renders_special_messages() {
    const META: &str = "apimachinery.pkg.apis.meta.v1";
    let time = format!("{META}.Time");
    let micro = format!("{META}.MicroTime");
    let duration = format!("{META}.Duration");
    let fields = format!("{META}.FieldsV1");
    let q = "apimachinery.pkg.api.resource.Quantity";
    let ios = "apimachinery.pkg.util.intstr.IntOrString";
    let cases = [
        (time.as_str(), Pb::new(), None),
        (
            &time,
            Pb::new().int(1, 0).int(2, 0),
            Some(json!("1970-01-01T00:00:00Z")),
        ),
        (
            &time,
            Pb::new().int(1, 1_704_164_645).int(2, 500),
            Some(json!("2024-01-02T03:04:05Z")),
        ),
        (&micro, Pb::new(), None),
        (
            &micro,
            Pb::new().int(1, 1_704_164_645).int(2, 1_999),
            Some(json!("2024-01-02T03:04:05.000001Z")),
        ),
        (
            &duration,
            Pb::new().int(1, 3_600_000_000_000),
            Some(json!("1h0m0s")),
        ),
        (&duration, Pb::new(), Some(json!("0s"))),
        (q, Pb::new(), Some(json!("0"))),
        (q, quantity("1.5Gi"), Some(json!("1.5Gi"))),
        (q, quantity("1").str(1, "2"), Some(json!("2"))),
        (ios, int_or_int(-3), Some(json!(-3))),
        (ios, int_or_str("50%"), Some(json!("50%"))),
        (ios, Pb::new().int(1, 1), Some(json!(""))),
        (ios, Pb::new(), Some(json!(0))),
        (
            &fields,
            Pb::new().bytes(1, br#"{"f:data":{}}"#),
            Some(json!({"f:data": {}})),
        ),
        (&fields, Pb::new(), None),
    ];
    for (name, pb, want) in cases {
        assert_eq!(decode_as(name, &pb), Ok(want.clone()), "{name} {want:?}");
    }
}

fn invalid(message: &str, field: &str, reason: &str, offset: usize) -> ProtobufError {
    ProtobufError::InvalidValue {
        message: message.into(),
        field: field.into(),
        reason: reason.into(),
        offset,
    }
}

/// `depth` ControllerRevisions, each holding the next in its raw data.
fn nested_revisions(depth: usize) -> Vec<u8> {
    let mut body = envelope("v1", "ConfigMap", &Pb::new());
    for _ in 0..depth {
        body = envelope(
            "apps/v1",
            "ControllerRevision",
            &Pb::new().msg(2, Pb::new().bytes(1, &body)),
        );
    }
    body
}

#[test]
fn reports_malformed_bodies() {
    let cm = |raw: Pb| envelope_at_end("v1", "ConfigMap", &raw);
    let (wrong_wire, at) = cm(Pb::new().int(1, 5));
    let (bad_length, at_len) = cm(Pb::new().raw(&[0x12, 0x05, 0x0a]));
    let (bad_tag, at_tag) = cm(Pb::new().raw(&[0x0f, 0x00]));
    let (zero_field, at_zero) = cm(Pb::new().raw(&[0x00, 0x00]));
    let (long_varint, at_long) = cm(Pb::new().raw(&[
        0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]));
    let (bad_json, at_json) = envelope_at_end(
        "apps/v1",
        "ControllerRevision",
        &Pb::new().msg(2, Pb::new().bytes(1, b"{nope")),
    );
    let (bad_time, at_time) = cm(Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, i64::MAX))));
    let container = Pb::new().msg(8, Pb::new().map_msg(1, "cpu", quantity("")));
    let (empty_quantity, at_q) =
        envelope_at_end("v1", "Pod", &Pb::new().msg(2, Pb::new().msg(2, container)));
    let strategy = Pb::new().msg(2, Pb::new().msg(1, Pb::new().int(1, 2)));
    let (bad_intstr, at_intstr) = envelope_at_end(
        "apps/v1",
        "Deployment",
        &Pb::new().msg(2, Pb::new().msg(4, strategy)),
    );
    let meta = "apimachinery.pkg.apis.meta.v1";
    let cases: Vec<(&str, Vec<u8>, ProtobufError)> = vec![
        (
            "json body",
            br#"{"kind":"Pod"}"#.to_vec(),
            ProtobufError::BadMagic,
        ),
        ("short magic", b"k8s".to_vec(), ProtobufError::BadMagic),
        ("magic only", MAGIC.to_vec(), ProtobufError::EmptyBody),
        (
            "truncated varint",
            b"k8s\0\x0a\x80".to_vec(),
            ProtobufError::TruncatedVarint { offset: 5 },
        ),
        (
            "truncated envelope",
            b"k8s\0\x0a\x05\x0a\x01".to_vec(),
            ProtobufError::Truncated {
                offset: 5,
                len: 5,
                remaining: 2,
            },
        ),
        (
            "unknown kind",
            envelope("v1", "Widget", &Pb::new()),
            ProtobufError::UnknownKind {
                api_version: "v1".into(),
                kind: "Widget".into(),
            },
        ),
        (
            "unknown group",
            envelope("example.com/v1", "Widget", &Pb::new()),
            ProtobufError::UnknownKind {
                api_version: "example.com/v1".into(),
                kind: "Widget".into(),
            },
        ),
        (
            "no kind",
            envelope("v1", "", &Pb::new()),
            ProtobufError::MissingKind {
                api_version: "v1".into(),
            },
        ),
        (
            "no apiVersion",
            envelope("", "Pod", &Pb::new()),
            ProtobufError::MissingApiVersion { kind: "Pod".into() },
        ),
        (
            "wrong wire type",
            wrong_wire,
            ProtobufError::WrongWireType {
                message: "api.core.v1.ConfigMap".into(),
                field: "metadata".into(),
                number: 1,
                found: "0 (varint)",
                expected: "2 (length-delimited)",
                offset: at,
            },
        ),
        (
            "length past the end",
            bad_length,
            ProtobufError::Truncated {
                offset: at_len + 1,
                len: 5,
                remaining: 1,
            },
        ),
        (
            "wire type 7",
            bad_tag,
            ProtobufError::InvalidWireType {
                wire_type: 7,
                offset: at_tag,
            },
        ),
        (
            "field number 0",
            zero_field,
            ProtobufError::InvalidFieldNumber {
                number: 0,
                offset: at_zero,
            },
        ),
        (
            "eleven-byte varint",
            long_varint,
            ProtobufError::VarintOverflow {
                offset: at_long + 1,
            },
        ),
        (
            "raw not JSON",
            bad_json,
            ProtobufError::RawNotJson {
                offset: at_json + 4,
                reason: "key must be a string at line 1 column 2".into(),
            },
        ),
        (
            "time out of range",
            bad_time,
            invalid(
                &format!("{meta}.Time"),
                "seconds",
                &format!("{} is out of range", i64::MAX),
                at_time + 4,
            ),
        ),
        (
            "empty quantity",
            empty_quantity,
            invalid(
                "apimachinery.pkg.api.resource.Quantity",
                "string",
                "empty quantity",
                at_q + 15,
            ),
        ),
        (
            "IntOrString type 2",
            bad_intstr,
            invalid(
                "apimachinery.pkg.util.intstr.IntOrString",
                "type",
                "2 is neither 0 (int) nor 1 (string)",
                at_intstr + 8,
            ),
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(decode_object(&body), Err(want), "{name}");
    }
}

#[test]
fn limits_nesting() {
    // Each revision is two levels: the revision and its RawExtension.
    assert!(decode_object(&nested_revisions(MAX_DEPTH / 2 - 1)).is_ok());
    let err = decode_object(&nested_revisions(MAX_DEPTH / 2)).unwrap_err();
    assert!(
        matches!(
            err,
            ProtobufError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_name_the_problem() {
    let (body, at) = envelope_at_end("v1", "ConfigMap", &Pb::new().int(1, 5));
    assert_eq!(
        decode_object(&body).unwrap_err().to_string(),
        format!(
            "wrong wire type 0 (varint) for field metadata (1) of message api.core.v1.ConfigMap at byte {at}; expected 2 (length-delimited)"
        )
    );
    assert_eq!(
        decode_object(b"k8s\0\x0a\x80").unwrap_err().to_string(),
        "truncated varint at byte 5"
    );
}

#[test]
fn damaged_bodies_fail_without_panicking() {
    let (body, _) = deployment();
    for len in 0..body.len() {
        // Some prefixes are whole bodies (the envelope's last fields cut off).
        let result = decode_object(&body[..len]);
        assert!(len > MAGIC.len() || result.is_err(), "{len}");
    }
    for at in MAGIC.len()..body.len() {
        for flip in [0x01, 0x07, 0x80, 0xff] {
            let mut damaged = body.clone();
            damaged[at] ^= flip;
            let _ = decode_object(&damaged);
        }
    }
}

/// Kubernetes' own round-trip fixtures: `<group>.<version>.<Kind>.pb` written
/// by Go's encoder beside the `.json` its JSON encoder wrote for the same
/// object (every field set), from `testdata/HEAD` of `k8s.io/api` at the
/// schemas' version (`git show v0.33.9:testdata/HEAD/<file>` in a clone of
/// `kubernetes/api`, for the groups `api/build.rs` embeds). Run with that
/// directory in `FERRY_K8S_TESTDATA`; at 1.33 all 71 fixtures match.
#[test]
#[ignore = "needs Kubernetes' testdata in FERRY_K8S_TESTDATA"]
fn matches_kubernetes_round_trip_fixtures() {
    let dir = std::env::var("FERRY_K8S_TESTDATA").expect("FERRY_K8S_TESTDATA names a directory");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        // Written without apiVersion and kind: Go decodes it as the kind the
        // caller expects, as no request body is.
        .filter(|p| !p.ends_with("core.v1.WatchEvent.pb"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for pb in &paths {
        let body = std::fs::read(pb).unwrap();
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        match decode_object(&body) {
            Ok(got) => {
                let mut diffs = Vec::new();
                json_diff("", &got, &want, &mut diffs);
                if !diffs.is_empty() {
                    failures.push(format!("{}:\n  {}", pb.display(), diffs.join("\n  ")));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", pb.display())),
        }
    }
    assert!(!paths.is_empty(), "no .pb files in {dir}");
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

/// Paths where `got` and `want` differ.
fn json_diff(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for key in g.keys().chain(w.keys().filter(|k| !g.contains_key(*k))) {
                let (gv, wv) = (
                    g.get(key).unwrap_or(&Value::Null),
                    w.get(key).unwrap_or(&Value::Null),
                );
                json_diff(&format!("{path}.{key}"), gv, wv, out);
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                json_diff(&format!("{path}[{i}]"), gv, wv, out);
            }
        }
        (g, w) if g != w => out.push(format!("{path}: got {g}, want {w}")),
        _ => {}
    }
}

/// Go's JSON leaves out a zero only for plain fields tagged `omitempty`:
/// pointers (`replicas`, `automountServiceAccountToken`) and untagged fields
/// (`allowed`) keep it.
#[test]
fn zero_values_are_left_out_only_where_go_omits_them() {
    use super::decode::omits_zero;
    let cases = [
        (
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "generation",
            true,
        ),
        ("api.core.v1.Container", "stdin", true),
        ("api.core.v1.PodSpec", "hostNetwork", true),
        ("api.apps.v1.DeploymentSpec", "paused", true),
        ("api.apps.v1.DeploymentSpec", "replicas", false),
        ("api.core.v1.PodSpec", "automountServiceAccountToken", false),
        (
            "api.core.v1.PodSpec",
            "terminationGracePeriodSeconds",
            false,
        ),
        (
            "api.authorization.v1.SubjectAccessReviewStatus",
            "allowed",
            false,
        ),
        (
            "api.authorization.v1.SubjectAccessReviewStatus",
            "denied",
            true,
        ),
        ("api.apps.v1.DeploymentStatus", "replicas", true),
    ];
    for (message, field, omitted) in cases {
        assert_eq!(omits_zero(message, field), omitted, "{message}.{field}");
    }
}
