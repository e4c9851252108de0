//! `meta.k8s.io` Table output (`kubectl get nodes.metrics.k8s.io`), as
//! metrics-server's `ConvertToTable` plus the apiserver's row-object handling:
//! columns Name, the sorted resource names of the first item, Window; pod rows
//! sum their containers; each row carries PartialObjectMetadata, the full
//! object or nothing (`includeObject`). No request handling here.

use serde::Serialize;

use super::negotiate::MetaVersion;
use super::types::{ListMeta, NodeItem, NodeMetrics, PartialObjectMetadata, PodItem, PodMetrics, Version};
use crate::model::{ObjectMeta, UnixNanos};
use apimachinery::format::{Quantity, QuantityFormat, cpu_quantity, format_duration, memory_quantity};
use apimachinery::status::Status;

/// The `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    Metadata,
    Object,
    None,
}

impl IncludeObject {
    /// Parses the parameter; an unknown value is the apiserver's 400.
    pub fn parse(v: Option<&str>) -> Result<Self, Status> {
        match v.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            "None" => Ok(IncludeObject::None),
            other => Err(Status::bad_request(format!(
                "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub typ: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

impl Column {
    fn new(name: &str, format: &'static str, description: &'static str) -> Self {
        Column { name: name.to_string(), typ: "string", format, description, priority: 0 }
    }
}

/// What a row carries in `object`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RowObject<'a> {
    Partial(PartialObjectMetadata<'a>),
    Node(NodeMetrics<'a>),
    Pod(PodMetrics<'a>),
}

#[derive(Debug, Clone, Serialize)]
pub struct Row<'a> {
    pub cells: Vec<String>,
    /// `null` with `includeObject=None`, as Go's RawExtension writes it.
    pub object: Option<RowObject<'a>>,
}

/// A Table; Go leaves both slices null when there is no item.
#[derive(Debug, Clone, Serialize)]
pub struct Table<'a> {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: ListMeta,
    #[serde(rename = "columnDefinitions")]
    pub column_definitions: Option<Vec<Column>>,
    pub rows: Option<Vec<Row<'a>>>,
}

/// Everything a row needs besides its cells.
pub struct RowContext {
    pub meta_version: MetaVersion,
    pub version: Version,
    pub include: IncludeObject,
    pub now: UnixNanos,
}

impl RowContext {
    fn partial_or<'a>(&self, meta: &'a ObjectMeta, full: impl FnOnce() -> RowObject<'a>) -> Option<RowObject<'a>> {
        match self.include {
            IncludeObject::Metadata => {
                Some(RowObject::Partial(PartialObjectMetadata::new(meta, self.now, self.meta_version.api_version())))
            }
            IncludeObject::Object => Some(full()),
            IncludeObject::None => None,
        }
    }
}

fn columns(names: &[&str]) -> Vec<Column> {
    let mut cols = vec![Column::new("Name", "name", "Name of the resource")];
    cols.extend(names.iter().map(|n| Column::new(n, "quantity", "")));
    cols.push(Column::new("Window", "duration", ""));
    cols
}

fn empty_table(ctx: &RowContext) -> Table<'static> {
    Table {
        kind: "Table",
        api_version: ctx.meta_version.api_version(),
        metadata: ListMeta {},
        column_definitions: None,
        rows: None,
    }
}

/// The Table of some nodes (one for a get, all listed for a list).
pub fn node_table<'a>(items: &'a [NodeItem], ctx: &RowContext) -> Table<'a> {
    let mut table = empty_table(ctx);
    if items.is_empty() {
        return table;
    }
    let names = ["cpu", "memory"];
    table.column_definitions = Some(columns(&names));
    let rows = items
        .iter()
        .map(|item| Row {
            cells: vec![
                item.meta.name.clone(),
                cpu_quantity(item.usage.usage.cpu_nanocores).to_string(),
                memory_quantity(item.usage.usage.memory_bytes).to_string(),
                format_duration(item.usage.window_ns),
            ],
            object: ctx.partial_or(&item.meta, || RowObject::Node(item.to_wire(ctx.version, ctx.now, true))),
        })
        .collect();
    table.rows = Some(rows);
    table
}

/// The Table of some pods: each row sums the usage of the pod's containers.
/// Columns come from the first pod that reports any resource, as in metrics-server.
pub fn pod_table<'a>(items: &'a [PodItem], ctx: &RowContext) -> Table<'a> {
    let mut table = empty_table(ctx);
    if items.is_empty() {
        return table;
    }
    let mut names: Option<Vec<&str>> = None;
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let zero = |format| Quantity { value: 0, scale: 0, format };
        let (mut cpu, mut mem) = (zero(QuantityFormat::DecimalSi), zero(QuantityFormat::BinarySi));
        for c in &item.usage.containers {
            cpu = cpu.plus(cpu_quantity(c.usage.cpu_nanocores));
            mem = mem.plus(memory_quantity(c.usage.memory_bytes));
        }
        let has_usage = !item.usage.containers.is_empty();
        if names.is_none() || names.as_ref().is_some_and(Vec::is_empty) {
            let found = if has_usage { vec!["cpu", "memory"] } else { Vec::new() };
            table.column_definitions = Some(columns(&found));
            names = Some(found);
        }
        let mut cells = vec![item.meta.name.clone()];
        for name in names.as_deref().unwrap_or(&[]) {
            cells.push(if *name == "cpu" { cpu.to_string() } else { mem.to_string() });
        }
        cells.push(format_duration(item.usage.window_ns));
        rows.push(Row {
            cells,
            object: ctx.partial_or(&item.meta, || RowObject::Pod(item.to_wire(ctx.version, ctx.now, true))),
        });
    }
    table.rows = Some(rows);
    table
}
