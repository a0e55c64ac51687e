//! `ferry top nodes` and `ferry top pods`: `metrics.k8s.io` usage in
//! kubectl's columns (millicores, MiB, and for nodes the share of allocatable).

use super::api::{status_of, Api};
use crate::printers::table::render_table;
use anyhow::{bail, Result};
use ferry_api::metrics;
use ferry_api::object::{ListOptions, ObjectRequest, Verb};
use ferry_api::quantity::Quantity;
use serde_json::Value;
use std::process::ExitCode;

/// `ferry top`.
#[derive(clap::Subcommand)]
pub enum TopCmd {
    /// CPU and memory of nodes (and their share of allocatable).
    #[command(visible_aliases = ["node", "no"])]
    Nodes {
        /// One node.
        name: Option<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Leave the header out.
        #[arg(long)]
        no_headers: bool,
    },
    /// CPU and memory of pods.
    #[command(visible_aliases = ["pod", "po"])]
    Pods {
        /// One pod.
        name: Option<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// One line per container.
        #[arg(long)]
        containers: bool,
        /// Leave the header out.
        #[arg(long)]
        no_headers: bool,
    },
}

fn milli(q: &Value) -> i128 {
    q.as_str()
        .and_then(Quantity::parse)
        .map_or(0, |q| q.milli())
}

fn bytes(q: &Value) -> i128 {
    q.as_str()
        .and_then(Quantity::parse)
        .map_or(0, |q| q.value())
}

fn cpu_cell(m: i128) -> String {
    format!("{m}m")
}

fn mem_cell(b: i128) -> String {
    format!("{}Mi", b / (1024 * 1024))
}

/// kubectl's `top node` rows: metrics first (in their order), then nodes
/// that have none as `<unknown>`. `nodes` are the Node objects (allocatable).
pub fn node_rows(metrics: &[Value], nodes: &[Value], headers: bool) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if headers {
        rows.push(
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
                .map(String::from)
                .to_vec(),
        );
    }
    let name = |v: &Value| v["metadata"]["name"].as_str().unwrap_or("").to_string();
    for m in metrics {
        let n = name(m);
        let Some(node) = nodes.iter().find(|x| name(x) == n) else {
            continue;
        };
        let (cpu, mem) = (milli(&m["usage"]["cpu"]), bytes(&m["usage"]["memory"]));
        let alloc = &node["status"]["allocatable"];
        let pct = |used: i128, of: i128| {
            if of > 0 {
                format!("{}%", used * 100 / of)
            } else {
                "<unknown>".to_string()
            }
        };
        rows.push(vec![
            n,
            cpu_cell(cpu),
            pct(cpu, milli(&alloc["cpu"])),
            mem_cell(mem),
            pct(mem, bytes(&alloc["memory"])),
        ]);
    }
    for node in nodes {
        let n = name(node);
        if !metrics.iter().any(|m| name(m) == n) {
            let u = "<unknown>".to_string();
            rows.push(vec![n, u.clone(), u.clone(), u.clone(), u]);
        }
    }
    rows
}

/// kubectl's `top pod` rows (`NAMESPACE` first with `-A`; one line per
/// container, `POD` then `NAME`, with `--containers`).
pub fn pod_rows(
    metrics: &[Value],
    all_namespaces: bool,
    containers: bool,
    headers: bool,
) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if headers {
        let mut h: Vec<String> = Vec::new();
        if all_namespaces {
            h.push("NAMESPACE".into());
        }
        if containers {
            h.push("POD".into());
        }
        h.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"].map(String::from));
        rows.push(h);
    }
    for m in metrics {
        let ns = m["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let pod = m["metadata"]["name"].as_str().unwrap_or("").to_string();
        let cs: &[Value] = m["containers"].as_array().map_or(&[], Vec::as_slice);
        let lead = |row: &mut Vec<String>| {
            if all_namespaces {
                row.push(ns.clone());
            }
        };
        if containers {
            for c in cs {
                let mut row = Vec::new();
                lead(&mut row);
                row.push(pod.clone());
                row.push(c["name"].as_str().unwrap_or("").to_string());
                row.push(cpu_cell(milli(&c["usage"]["cpu"])));
                row.push(mem_cell(bytes(&c["usage"]["memory"])));
                rows.push(row);
            }
        } else {
            let cpu: i128 = cs.iter().map(|c| milli(&c["usage"]["cpu"])).sum();
            let mem: i128 = cs.iter().map(|c| bytes(&c["usage"]["memory"])).sum();
            let mut row = Vec::new();
            lead(&mut row);
            row.extend([pod, cpu_cell(cpu), mem_cell(mem)]);
            rows.push(row);
        }
    }
    rows
}

async fn fetch(
    api: &Api,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>> {
    let verb = if name.is_some() {
        Verb::Get
    } else {
        Verb::List
    };
    let mut req = ObjectRequest::new(verb, resource, ns, name);
    req.list = ListOptions {
        label_selector: selector.map(str::to_string),
        ..Default::default()
    };
    let v = match api.send(req).await {
        Ok(v) => v,
        Err(e) if status_of(&e).is_some_and(|s| s.code == 404) && name.is_some() => {
            bail!("{e}")
        }
        Err(e) => return Err(e),
    };
    Ok(match v["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![v],
    })
}

/// Runs `ferry top`.
pub async fn run(api: &Api, cmd: TopCmd, ns: Option<&str>) -> Result<ExitCode> {
    match cmd {
        TopCmd::Nodes {
            name,
            selector,
            no_headers,
        } => {
            let m = fetch(
                api,
                metrics::NODES,
                None,
                name.as_deref(),
                selector.as_deref(),
            )
            .await?;
            let res = ferry_api::resources::by_cli_name("nodes").expect("served");
            let nodes = match &name {
                Some(n) => api.get(res, None, n).await?.into_iter().collect(),
                None => {
                    let opts = ListOptions {
                        label_selector: selector.clone(),
                        ..Default::default()
                    };
                    api.list(res, None, &opts).await?.0
                }
            };
            if m.is_empty() {
                bail!("metrics not available yet");
            }
            outln!("{}", render_table(&node_rows(&m, &nodes, !no_headers)));
        }
        TopCmd::Pods {
            name,
            selector,
            all_namespaces,
            containers,
            no_headers,
        } => {
            let ns = if all_namespaces {
                None
            } else {
                Some(ns.unwrap_or("default"))
            };
            let m = fetch(api, metrics::PODS, ns, name.as_deref(), selector.as_deref()).await?;
            if m.is_empty() {
                match ns {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let rows = pod_rows(&m, all_namespaces, containers, !no_headers);
            outln!("{}", render_table(&rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pm(ns: &str, name: &str, cs: &[(&str, &str, &str)]) -> Value {
        json!({"metadata": {"namespace": ns, "name": name},
            "containers": cs.iter().map(|(n, c, m)| json!({"name": n, "usage": {"cpu": c, "memory": m}})).collect::<Vec<_>>()})
    }

    #[test]
    fn node_rows_as_kubectl_top_node() {
        let metrics = vec![json!({"metadata": {"name": "n1"},
            "usage": {"cpu": "250000000n", "memory": "524288Ki"}})];
        let nodes = vec![
            json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}}}),
            json!({"metadata": {"name": "n2"}, "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}}}),
        ];
        let out = render_table(&node_rows(&metrics, &nodes, true));
        assert_eq!(
            out,
            "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)\n\
             n1     250m         12%         512Mi           25%\n\
             n2     <unknown>    <unknown>   <unknown>       <unknown>"
        );
    }

    #[test]
    fn pod_rows_sum_containers_or_list_them() {
        let m = vec![
            pm(
                "default",
                "web",
                &[("a", "100000000n", "1024Ki"), ("b", "5000000n", "2048Ki")],
            ),
            pm("kube-system", "dns", &[("dns", "0", "0")]),
        ];
        let cases: &[(bool, bool, &[&[&str]])] = &[
            (
                false,
                false,
                &[
                    &["NAME", "CPU(cores)", "MEMORY(bytes)"],
                    &["web", "105m", "3Mi"],
                    &["dns", "0m", "0Mi"],
                ],
            ),
            (
                true,
                false,
                &[
                    &["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                    &["default", "web", "105m", "3Mi"],
                    &["kube-system", "dns", "0m", "0Mi"],
                ],
            ),
            (
                false,
                true,
                &[
                    &["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                    &["web", "a", "100m", "1Mi"],
                    &["web", "b", "5m", "2Mi"],
                    &["dns", "dns", "0m", "0Mi"],
                ],
            ),
        ];
        for (all, containers, want) in cases {
            let rows = pod_rows(&m, *all, *containers, true);
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(rows, want, "-A {all} --containers {containers}");
        }
        assert_eq!(pod_rows(&m, false, false, false).len(), 2, "no headers");
    }
}
