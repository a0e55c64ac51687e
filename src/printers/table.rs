//! Tables as `kubectl get` prints them: which rows, and how they line up.

use super::TableOptions;
use ferry_api::printers::{columns, labels_string, text};
use ferry_api::resources::Resource;
use jiff::Timestamp;
use serde_json::Value;

/// The rows of `ferry get`: a header (unless `no_headers`), then one row per
/// object, in kubectl's columns for the kind.
pub fn table(
    res: &Resource,
    items: &[Value],
    opts: &TableOptions,
    now: Timestamp,
) -> Vec<Vec<String>> {
    let namespace = opts.namespace_column && res.namespaced;
    let mut rows = Vec::with_capacity(items.len() + 1);
    if !opts.no_headers {
        let mut header = Vec::new();
        if namespace {
            header.push("NAMESPACE".to_string());
        }
        header.extend(columns::header(res.kind, opts.wide));
        if opts.show_labels {
            header.push("LABELS".to_string());
        }
        rows.push(header);
    }
    for obj in items {
        let mut row = Vec::new();
        if namespace {
            row.push(text(obj, "/metadata/namespace").to_string());
        }
        row.extend(
            columns::cells(res.kind, obj, opts.wide, now)
                .iter()
                .map(ToString::to_string),
        );
        if opts.show_labels {
            row.push(labels_string(obj.pointer("/metadata/labels")));
        }
        rows.push(row);
    }
    rows
}

/// Lines rows up as kubectl does (Go's tabwriter: columns at least 6 wide,
/// 3 spaces between them, left aligned), without trailing spaces or a final newline.
pub fn render_table(rows: &[Vec<String>]) -> String {
    align(rows, 6, 3)
}

/// Go's `text/tabwriter` on lines of cells: every cell but a line's last is
/// padded to the widest cell of its column block (consecutive lines that have
/// that cell), plus `padding`, and at least `min_width`.
pub(crate) fn align(lines: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| vec![0; l.len().saturating_sub(1)])
        .collect();
    block_widths(lines, &mut widths, 0, lines.len(), 0, (min_width, padding));
    let mut out = String::new();
    for (line, widths) in lines.iter().zip(&widths) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if let Some(&w) = widths.get(i) {
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// Sets the width of `column` in each block of lines `start..end` that has it,
/// then does the same for the next column within each block.
fn block_widths(
    lines: &[Vec<String>],
    widths: &mut [Vec<usize>],
    start: usize,
    end: usize,
    column: usize,
    (min_width, padding): (usize, usize),
) {
    let has = |l: usize| lines[l].len() > column + 1;
    let mut line = start;
    while line < end {
        if !has(line) {
            line += 1;
            continue;
        }
        let first = line;
        let mut width = min_width;
        while line < end && has(line) {
            width = width.max(lines[line][column].chars().count() + padding);
            line += 1;
        }
        for w in &mut widths[first..line] {
            w[column] = width;
        }
        block_widths(lines, widths, first, line, column + 1, (min_width, padding));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::resources::by_cli_name;
    use serde_json::json;

    /// Three days before the tables' `now`: AGE `3d`.
    const CREATED: &str = "2025-05-29T00:00:00Z";

    fn rows_with(kind: &str, items: &[Value], opts: TableOptions) -> Vec<Vec<String>> {
        let now: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        table(by_cli_name(kind).unwrap(), items, &opts, now)
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": CREATED, "labels": {"app": name}})
    }

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|l| l.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn namespace_and_labels_columns_and_no_headers() {
        let opts = TableOptions {
            namespace_column: true,
            show_labels: true,
            no_headers: true,
            wide: false,
        };
        let cm = json!({"metadata": meta("conf"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(
            rows_with("cm", &[cm], opts),
            [vec!["default", "conf", "3", "3d", "app=conf"]]
        );
        let opts = TableOptions {
            namespace_column: true,
            show_labels: true,
            ..Default::default()
        };
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": CREATED}, "status": {"phase": "Active"}});
        assert_eq!(
            rows_with("ns", &[ns], opts),
            [
                vec!["NAME", "STATUS", "AGE", "LABELS"],
                vec!["kube-system", "Active", "3d", "<none>"]
            ]
        );
    }

    #[test]
    fn columns_are_padded_by_three_and_at_least_six() {
        let t = render_table(&rows(&[
            &["NAME", "IP", "AGE"],
            &["web-1", "", "5m"],
            &["a", "10.0.0.1", ""],
        ]));
        assert_eq!(
            t,
            "NAME    IP         AGE\nweb-1              5m\na       10.0.0.1"
        );
    }

    #[test]
    fn describe_blocks_align_separately() {
        let lines = rows(&[
            &["Name:", "web"],
            &["Namespace:", "default"],
            &["Containers:"],
            &["  a:", "b"],
        ]);
        assert_eq!(
            align(&lines, 0, 2),
            "Name:       web\nNamespace:  default\nContainers:\n  a:  b"
        );
    }
}
