use super::*;

/// Every `$ref` string under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

fn names(list: &Value) -> Vec<String> {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn version_is_kubernetes_1_33() {
    let v = version();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));
    // The Python client refuses a VersionInfo missing any of these.
    for k in [
        "buildDate",
        "compiler",
        "gitCommit",
        "gitTreeState",
        "gitVersion",
        "goVersion",
        "major",
        "minor",
        "platform",
    ] {
        assert!(v[k].is_string(), "{k}");
    }
    assert!(v["platform"].as_str().unwrap().contains('/'));
}

#[test]
fn metrics_are_discovered_as_metrics_server_lists_them() {
    let g = api_group("metrics.k8s.io").unwrap();
    assert_eq!(
        g["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    let l = api_resource_list("metrics.k8s.io", "v1beta1").unwrap();
    assert_eq!(l["groupVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(
        l["resources"],
        json!([
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ])
    );
    let agg = aggregated_discovery(false);
    let m = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "metrics.k8s.io")
        .expect("aggregated discovery lists metrics.k8s.io");
    assert_eq!(m["versions"][0]["version"], "v1beta1");
    assert_eq!(
        m["versions"][0]["resources"][0]["responseKind"]["kind"],
        "NodeMetrics"
    );
    assert!(
        openapi_v3("apis/metrics.k8s.io/v1beta1").is_none(),
        "no schema for metrics"
    );
}

#[test]
fn api_versions_and_groups() {
    let a = api_versions("10.0.0.1:6443");
    assert_eq!(a["kind"], "APIVersions");
    assert_eq!(a["versions"], json!(["v1"]));
    assert_eq!(
        a["serverAddressByClientCIDRs"][0]["serverAddress"],
        "10.0.0.1:6443"
    );
    let l = api_group_list();
    assert_eq!(l["kind"], "APIGroupList");
    let groups: Vec<&str> = l["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "apps",
            "batch",
            "autoscaling",
            "coordination.k8s.io",
            "discovery.k8s.io",
            "networking.k8s.io",
            "policy",
            "scheduling.k8s.io",
            "storage.k8s.io",
            "rbac.authorization.k8s.io",
            "authorization.k8s.io",
            "authentication.k8s.io",
            "metrics.k8s.io"
        ]
    );
    for g in l["groups"].as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        let version = match name {
            "autoscaling" => "v2",
            "metrics.k8s.io" => "v1beta1",
            _ => "v1",
        };
        assert_eq!(
            g["preferredVersion"]["groupVersion"],
            format!("{name}/{version}").as_str()
        );
        assert_eq!(g["versions"][0], g["preferredVersion"]);
        assert_eq!(api_group(name).unwrap()["kind"], "APIGroup");
    }
    assert!(api_group("").is_none());
    assert!(api_group("extensions").is_none());
}

#[test]
fn every_resource_is_in_its_resource_list() {
    for r in RESOURCES {
        let list = api_resource_list(r.group, r.version).unwrap();
        assert_eq!(list["kind"], "APIResourceList");
        assert_eq!(list["groupVersion"], r.api_version().as_str());
        let e = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == r.plural)
            .unwrap_or_else(|| panic!("{} missing", r.plural));
        assert_eq!(e["kind"], r.kind);
        assert_eq!(e["namespaced"], r.namespaced);
        assert_eq!(e["singularName"], r.kind.to_ascii_lowercase().as_str());
        // Every kind lists, but the access reviews (create only).
        let verbs = e["verbs"].as_array().unwrap();
        let want = if r.discovery().verbs == ["create"] {
            "create"
        } else {
            "list"
        };
        assert!(verbs.iter().any(|v| v == want), "{}", r.plural);
        for s in r.discovery().subresources {
            let name = format!("{}/{}", r.plural, s.name);
            let se = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(se["kind"], s.kind);
            assert_eq!(se["singularName"], "");
        }
    }
    // Sorted by name, as Kubernetes lists them.
    for (g, v) in group_versions() {
        let n = names(&api_resource_list(g, v).unwrap());
        let mut sorted = n.clone();
        sorted.sort();
        assert_eq!(n, sorted);
    }
}

#[test]
fn kubernetes_subresources_and_verbs() {
    let core = api_resource_list("", "v1").unwrap();
    assert!(core.get("apiVersion").is_none());
    let n = names(&core);
    for s in [
        "pods/status",
        "pods/log",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/binding",
        "pods/eviction",
        "namespaces/status",
        "namespaces/finalize",
        "nodes/status",
        "services/status",
        "serviceaccounts/token",
    ] {
        assert!(n.iter().any(|x| x == s), "{s}");
    }
    let find = |list: &Value, name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap()
    };
    let eviction = find(&core, "pods/eviction");
    assert_eq!(
        (&eviction["group"], &eviction["version"], &eviction["kind"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction"))
    );
    assert_eq!(find(&core, "pods/exec")["verbs"], json!(["create", "get"]));
    assert_eq!(find(&core, "pods/log")["verbs"], json!(["get"]));
    assert!(find(&core, "pods/status").get("group").is_none());
    assert_eq!(find(&core, "pods")["categories"], json!(["all"]));
    assert_eq!(find(&core, "pods")["shortNames"], json!(["po"]));
    assert!(find(&core, "configmaps").get("categories").is_none());
    let ns_verbs = find(&core, "namespaces")["verbs"].clone();
    assert!(!ns_verbs
        .as_array()
        .unwrap()
        .contains(&json!("deletecollection")));
    assert_eq!(
        find(&core, "namespaces/finalize")["verbs"],
        json!(["update"])
    );
    assert_eq!(
        find(&core, "serviceaccounts/token")["group"],
        "authentication.k8s.io"
    );
    let apps = api_resource_list("apps", "v1").unwrap();
    assert_eq!(apps["apiVersion"], "v1");
    for s in [
        "deployments/scale",
        "deployments/status",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets/scale",
        "statefulsets/status",
        "daemonsets/status",
    ] {
        assert!(names(&apps).iter().any(|x| x == s), "{s}");
    }
    let scale = find(&apps, "deployments/scale");
    assert_eq!(
        (&scale["group"], &scale["kind"]),
        (&json!("autoscaling"), &json!("Scale"))
    );
    assert!(!names(&apps).iter().any(|x| x == "daemonsets/scale"));
    // ControllerRevisions: namespaced, no short names, categories or subresources.
    let revs = find(&apps, "controllerrevisions");
    assert_eq!(
        (&revs["kind"], &revs["namespaced"]),
        (&json!("ControllerRevision"), &json!(true))
    );
    assert!(revs.get("shortNames").is_none() && revs.get("categories").is_none());
    assert!(!names(&apps)
        .iter()
        .any(|x| x.starts_with("controllerrevisions/")));
    let batch = names(&api_resource_list("batch", "v1").unwrap());
    assert!(batch.contains(&"jobs/status".to_string()));
    assert!(batch.contains(&"cronjobs/status".to_string()));
    // EndpointSlices: namespaced, every verb, no short names, categories or subresources.
    let disc = api_resource_list("discovery.k8s.io", "v1").unwrap();
    assert_eq!(names(&disc), ["endpointslices"]);
    let slices = find(&disc, "endpointslices");
    assert_eq!(slices["kind"], "EndpointSlice");
    assert_eq!(slices["singularName"], "endpointslice");
    assert_eq!(slices["namespaced"], true);
    assert_eq!(
        slices["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    assert!(slices.get("shortNames").is_none());
    assert!(slices.get("categories").is_none());
    // NetworkPolicies: namespaced, every verb, short name netpol, no subresources.
    let net = api_resource_list("networking.k8s.io", "v1").unwrap();
    assert_eq!(
        names(&net),
        [
            "ingressclasses",
            "ingresses",
            "ingresses/status",
            "networkpolicies"
        ]
    );
    let np = find(&net, "networkpolicies");
    assert_eq!(np["kind"], "NetworkPolicy");
    assert_eq!(np["singularName"], "networkpolicy");
    assert_eq!(np["namespaced"], true);
    assert_eq!(np["shortNames"], json!(["netpol"]));
    assert_eq!(
        np["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    assert!(np.get("categories").is_none());
}

#[test]
fn unknown_group_versions_are_none() {
    assert!(api_resource_list("", "v2").is_none());
    assert!(api_resource_list("apps", "v1beta1").is_none());
    assert!(api_resource_list("extensions", "v1beta1").is_none());
    assert!(api_resource_list("policy", "v1beta1").is_none());
    let policy = names(&api_resource_list("policy", "v1").unwrap());
    assert!(policy.contains(&"poddisruptionbudgets/status".to_string()));
    assert!(openapi_v3("apis/extensions/v1beta1").is_none());
    assert!(openapi_v3("/openapi/v3/apis/apps/v2").is_none());
    assert!(openapi_v3("api/v2").is_none());
    assert!(openapi_v3("").is_none());
    assert!(openapi_v3_hash("apis/policy/v1beta1").is_none());
    assert!(openapi_v3_hash("apis/policy/v1").is_some());
    assert!(openapi_v3_hash("apis/discovery.k8s.io/v1").is_some());
    assert!(openapi_v3_hash("apis/networking.k8s.io/v1").is_some());
}

#[test]
fn aggregated_discovery_lists_every_resource() {
    for (legacy, doc) in [
        (true, aggregated_discovery(true)),
        (false, aggregated_discovery(false)),
    ] {
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        for item in doc["items"].as_array().unwrap() {
            let name = item["metadata"].get("name").and_then(Value::as_str);
            assert_eq!(name.is_none(), legacy);
            for v in item["versions"].as_array().unwrap() {
                assert_eq!(v["freshness"], "Current");
            }
        }
    }
    let v2beta1 = aggregated_discovery_v2beta1(false);
    assert_eq!(v2beta1["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    for r in RESOURCES {
        let doc = aggregated_discovery(r.group.is_empty());
        let item = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["metadata"]
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    == r.group
            })
            .unwrap_or_else(|| panic!("group {:?} missing", r.group));
        let version = item["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == r.version)
            .unwrap();
        let e = version["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["resource"] == r.plural)
            .unwrap_or_else(|| panic!("{} missing", r.plural));
        assert_eq!(e["responseKind"]["kind"], r.kind);
        assert_eq!(e["responseKind"]["group"], "");
        assert_eq!(
            e["scope"],
            if r.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
        );
        assert_eq!(e["singularResource"], r.kind.to_ascii_lowercase().as_str());
        let d = r.discovery();
        assert_eq!(e["verbs"], strings(d.verbs));
        let subs: Vec<&str> = e
            .get("subresources")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| s["subresource"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<&str> = d.subresources.iter().map(|s| s.name).collect();
        assert_eq!(subs, want, "{}", r.plural);
        if let Some(a) = e.get("subresources").and_then(Value::as_array) {
            for s in a {
                // client-go drops a subresource without a response kind.
                assert!(!s["responseKind"]["kind"].as_str().unwrap().is_empty());
            }
        }
    }
    let apps = aggregated_discovery(false);
    let deploy = apps["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == "deployments")
        .unwrap()
        .clone();
    assert_eq!(deploy["categories"], json!(["all"]));
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(
        deploy["subresources"][0]["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
}

#[test]
fn discovery_format_follows_accept() {
    use DiscoveryFormat::*;
    let kubectl_133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let kubectl_127 =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let cases = [
        (Some(kubectl_133), AggregatedV2),
        (Some(kubectl_127), AggregatedV2Beta1),
        (Some("application/json"), Unaggregated),
        (Some("application/json, */*"), Unaggregated),
        (None, Unaggregated),
        (
            Some("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"),
            AggregatedV2,
        ),
        (
            Some("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"),
            Unaggregated,
        ),
        (
            Some("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
            Unaggregated,
        ),
    ];
    for (accept, want) in cases {
        assert_eq!(discovery_format(accept), want, "{accept:?}");
    }
}

#[test]
fn openapi_v3_root_lists_every_group_version_with_a_stable_hash() {
    let root = openapi_v3_root();
    let paths = root["paths"].as_object().unwrap();
    let want: Vec<String> = group_versions()
        .into_iter()
        .map(|(g, v)| gv_path(g, v))
        .collect();
    assert_eq!(paths.len(), want.len());
    for p in &want {
        let url = paths[p]["serverRelativeURL"].as_str().unwrap();
        let hash = openapi_v3_hash(p).unwrap();
        assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
        assert_eq!(hash.len(), 128);
        // The hash is of the served bytes.
        let bytes = openapi_v3_bytes(p).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA512, bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, hash);
        assert_eq!(
            serde_json::from_slice::<Value>(bytes).unwrap(),
            openapi_v3(p).unwrap()
        );
        // Every spelling of the request path finds the document.
        assert!(openapi_v3(&format!("/openapi/v3/{p}")).is_some());
        assert!(openapi_v3(&format!("/openapi/v3/{p}?hash={hash}")).is_some());
    }
    // Rebuilding gives the same bytes (the hash depends only on content).
    let m = gv_model("apps", "v1").unwrap();
    let again = serde_json::to_vec(&render_v3(&m)).unwrap();
    assert_eq!(again, openapi_v3_bytes("apis/apps/v1").unwrap());
}

/// The PATCH operations of a document whose GVK extension names `kind`.
fn patch_ops<'a>(doc: &'a Value, group: &str, version: &str, kind: &str) -> Vec<&'a Value> {
    let want = json!({"group": group, "version": version, "kind": kind});
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|p| p.get("patch"))
        .filter(|op| op["x-kubernetes-group-version-kind"] == want)
        .collect()
}

#[test]
fn every_resource_has_a_patch_with_field_validation() {
    for r in RESOURCES
        .iter()
        .filter(|r| r.discovery().verbs.contains(&"patch"))
    {
        let doc = openapi_v3(&gv_path(r.group, r.version)).unwrap();
        assert_eq!(doc["openapi"], "3.0.0");
        let ops = patch_ops(&doc, r.group, r.version, r.kind);
        assert!(!ops.is_empty(), "{} has no PATCH operation", r.kind);
        // kubectl's verifier stops at the first PATCH with the GVK, in map
        // order: every one of them must carry the parameter.
        for op in &ops {
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for p in ["fieldValidation", "dryRun", "fieldManager"] {
                assert!(params.contains(&p), "{} PATCH lacks {p}", r.kind);
            }
            assert_eq!(op["x-kubernetes-action"], "patch");
            assert!(op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some());
        }
        // The kind's schema carries its GVK (what explain and apply look for).
        let name = doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, s)| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| {
                        a.contains(&json!({"group": r.group, "version": r.version, "kind": r.kind}))
                    })
            })
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("no schema for {}", r.kind));
        assert!(name.ends_with(&format!(".{}", r.kind)), "{name}");
        // The paths kubectl explain searches for the GVK.
        let prefix = if r.group.is_empty() {
            "/api".to_string()
        } else {
            format!("/apis/{}", r.group)
        };
        let item = if r.namespaced {
            format!(
                "{prefix}/{}/namespaces/{{namespace}}/{}/{{name}}",
                r.version, r.plural
            )
        } else {
            format!("{prefix}/{}/{}/{{name}}", r.version, r.plural)
        };
        let p = &doc["paths"][&item];
        for m in ["get", "put", "patch", "delete"] {
            assert_eq!(
                p[m]["x-kubernetes-group-version-kind"]["kind"], r.kind,
                "{item} {m}"
            );
        }
        let post = if r.namespaced {
            format!(
                "{prefix}/{}/namespaces/{{namespace}}/{}",
                r.version, r.plural
            )
        } else {
            format!("{prefix}/{}/{}", r.version, r.plural)
        };
        assert_eq!(doc["paths"][&post]["post"]["x-kubernetes-action"], "post");
        let post_params = doc["paths"][&post]["post"]["parameters"].to_string();
        assert!(post_params.contains("fieldValidation"));
    }
}

#[test]
fn subresource_paths() {
    let core = openapi_v3("api/v1").unwrap();
    let paths = core["paths"].as_object().unwrap();
    let pod = "/api/v1/namespaces/{namespace}/pods/{name}";
    assert_eq!(
        paths[&format!("{pod}/status")]["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "Pod"
    );
    assert_eq!(
        paths[&format!("{pod}/exec")]["get"]["x-kubernetes-action"],
        "connect"
    );
    assert_eq!(
        paths[&format!("{pod}/exec")]["post"]["operationId"],
        "connectCoreV1PostNamespacedPodExec"
    );
    assert_eq!(
        paths[&format!("{pod}/eviction")]["post"]["x-kubernetes-group-version-kind"],
        json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );
    assert!(
        paths[&format!("{pod}/log")]["get"]["responses"]["200"]["content"]
            .get("text/plain")
            .is_some()
    );
    assert_eq!(
        paths["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"],
        "replaceCoreV1NamespaceFinalize"
    );
    assert_eq!(
        paths["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert!(paths["/api/v1/namespaces"].get("delete").is_none());
    let apps = openapi_v3("apis/apps/v1").unwrap();
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"]
            ["x-kubernetes-group-version-kind"],
        json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}])
    );
    assert_eq!(
        scale["get"]["operationId"],
        "readAppsV1NamespacedDeploymentScale"
    );
    let lease = openapi_v3("apis/coordination.k8s.io/v1").unwrap();
    assert_eq!(
        lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["get"]
            ["operationId"],
        "listCoordinationV1NamespacedLease"
    );
}

#[test]
fn every_ref_resolves_inside_its_document() {
    for (g, v) in group_versions() {
        let doc = openapi_v3(&gv_path(g, v)).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a component ref"));
            assert!(schemas.contains_key(name), "{r} unresolved in {g}/{v}");
        }
        // OpenAPI 3.0 ignores a $ref's siblings: none are left.
        fn lone_refs(v: &Value) {
            match v {
                Value::Object(o) => {
                    if o.contains_key("$ref") {
                        assert_eq!(o.len(), 1, "{v}");
                    }
                    o.values().for_each(lone_refs);
                }
                Value::Array(a) => a.iter().for_each(lone_refs),
                _ => {}
            }
        }
        lone_refs(&doc);
    }
    let v2 = openapi_v2();
    let defs = v2["definitions"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&v2, &mut all);
    for r in all {
        let name = r.strip_prefix("#/definitions/").unwrap();
        assert!(defs.contains_key(name), "{r} unresolved in v2");
    }
}

#[test]
fn schemas_explain_and_patch_like_kubernetes() {
    let core = openapi_v3("api/v1").unwrap();
    let schemas = &core["components"]["schemas"];
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert!(pod["description"].as_str().unwrap().starts_with("Pod is"));
    assert_eq!(pod["type"], "object");
    // Kubernetes does not require metadata (k8s-openapi does).
    assert!(pod.get("required").is_none());
    assert_eq!(
        schemas["io.k8s.api.core.v1.PodList"]["required"],
        json!(["items"])
    );
    // A field referencing another schema keeps its own description beside an allOf.
    let spec = &pod["properties"]["spec"];
    assert_eq!(
        spec["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(spec["description"].is_string());
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        schemas["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "version": "v1", "kind": "PodList"}])
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"]
            ["x-kubernetes-patch-strategy"],
        "merge"
    );
    // Every entry of the patch table names a property some document has.
    let docs: Vec<Value> = group_versions()
        .into_iter()
        .map(|(g, v)| openapi_v3(&gv_path(g, v)).unwrap())
        .collect();
    for (schema, property, _, _) in PATCH_STRATEGIES {
        assert!(
            docs.iter()
                .any(|d| d["components"]["schemas"][*schema]["properties"]
                    .get(*property)
                    .is_some_and(|p| p.get("x-kubernetes-patch-strategy").is_some())),
            "{schema}.{property}"
        );
    }
    // Each document holds only what its group-version needs.
    let apps = openapi_v3("apis/apps/v1").unwrap();
    assert!(apps["components"]["schemas"]
        .get("io.k8s.api.batch.v1.Job")
        .is_none());
    assert!(apps["components"]["schemas"]
        .get("io.k8s.api.apps.v1.DeploymentSpec")
        .is_some());
}

#[test]
fn openapi_v2_json_and_protobuf() {
    let v2 = openapi_v2();
    assert_eq!(v2["swagger"], "2.0");
    let put = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(put["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert!(put["parameters"].to_string().contains("fieldValidation"));
    let delete_options = &v2["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]
        ["x-kubernetes-group-version-kind"];
    assert!(delete_options.as_array().unwrap().len() >= 4);
    // swagger: "2.0" (field 1) and info {title (1), version (2)} (field 2).
    let pb = openapi_v2_protobuf();
    let mut want = vec![0x0a, 3];
    want.extend_from_slice(b"2.0");
    want.extend_from_slice(&[0x12, (2 + 10 + 2 + GIT_VERSION.len()) as u8, 0x0a, 10]);
    want.extend_from_slice(b"Kubernetes");
    want.extend_from_slice(&[0x12, GIT_VERSION.len() as u8]);
    want.extend_from_slice(GIT_VERSION.as_bytes());
    assert_eq!(pb, want);
}
