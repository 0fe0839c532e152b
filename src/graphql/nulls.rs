//! Field errors as the GraphQL specification has them. async-graphql leaves a failed field out
//! of `data`; the specification wants a failed nullable field present as `null`, and a failed
//! non-null field to make its parent `null` (and that parent's parent, while they are non-null,
//! up to `data` itself). [`SpecNulls`] notes the type of every field that failed, and of every
//! field above one, while the operation runs, and repairs `data` when it is done. A response
//! without errors pays one atomic load per field.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{
    Name, PathSegment, QueryPathNode, QueryPathSegment, Response, ServerResult, Value,
};

/// Makes `data` of every response what the specification says it is when fields fail.
pub struct SpecNulls;

impl ExtensionFactory for SpecNulls {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FailedFields::default())
    }
}

/// What one operation's failed fields and their ancestors were declared as.
#[derive(Default)]
struct FailedFields {
    any: AtomicBool,
    fields: Mutex<Fields>,
}

#[derive(Default)]
struct Fields {
    /// Fields whose resolver failed, with their declared type (`Int!`, `[Node]!`, ...).
    failed: Vec<(Vec<PathSegment>, String)>,
    /// The declared type of every field on the way to a failed one.
    above: Vec<(Vec<PathSegment>, String)>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for FailedFields {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let (path_node, return_type) = (info.path_node, info.return_type);
        let result = next.run(ctx, info).await;
        if result.is_err() {
            self.any.store(true, Ordering::Release);
            let mut fields = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
            fields
                .failed
                .push((segments(path_node), return_type.to_owned()));
        } else if self.any.load(Ordering::Acquire) {
            // Children finish before their parent, so a failure below is already noted.
            let path = segments(path_node);
            let mut fields = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
            let failed_below = fields
                .failed
                .iter()
                .any(|(failed, _)| failed.len() > path.len() && failed.starts_with(&path));
            if failed_below {
                fields.above.push((path, return_type.to_owned()));
            }
        }
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if self.any.load(Ordering::Acquire) {
            let fields =
                std::mem::take(&mut *self.fields.lock().unwrap_or_else(PoisonError::into_inner));
            repair(&mut response.data, &fields);
        }
        response
    }
}

fn segments(node: &QueryPathNode<'_>) -> Vec<PathSegment> {
    let mut path: Vec<PathSegment> = std::iter::once(node)
        .chain(node.parents())
        .map(|node| match node.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(index) => PathSegment::Index(index),
        })
        .collect();
    path.reverse();
    path
}

/// Puts a `null` where each failed field's error lands: at the field when it is nullable, else
/// at its nearest nullable ancestor (a list item, an object field, or all of `data`).
fn repair(data: &mut Value, fields: &Fields) {
    let mut targets: Vec<&[PathSegment]> = fields
        .failed
        .iter()
        .map(|(path, declared)| null_target(path, declared, &fields.above))
        .collect();
    // A null above another makes the lower one moot (and must not be filled back in).
    targets.sort_by_key(|path| path.len());
    let mut nulled: Vec<&[PathSegment]> = Vec::new();
    for target in targets {
        if nulled.iter().any(|above| target.starts_with(above)) {
            continue;
        }
        put_null(data, target);
        nulled.push(target);
    }
}

/// Where a failed field's `null` goes: the field itself if nullable, else up the path.
fn null_target<'p>(
    path: &'p [PathSegment],
    declared: &str,
    above: &[(Vec<PathSegment>, String)],
) -> &'p [PathSegment] {
    let mut position = path;
    let mut declared = Some(declared.to_owned());
    loop {
        // An unknown type is taken as nullable: the null stays as low as possible.
        if declared.as_deref().is_none_or(|ty| !ty.ends_with('!')) || position.is_empty() {
            return position;
        }
        position = &position[..position.len() - 1];
        declared = declared_at(position, above);
    }
}

/// The declared type at `position`: a field's own type, or for a list item the item type of
/// its list (one `[...]` peeled per index).
fn declared_at(position: &[PathSegment], above: &[(Vec<PathSegment>, String)]) -> Option<String> {
    if position.is_empty() {
        // `data` itself may be null.
        return None;
    }
    let indexes = position
        .iter()
        .rev()
        .take_while(|segment| matches!(segment, PathSegment::Index(_)))
        .count();
    let field = &position[..position.len() - indexes];
    let mut ty = above
        .iter()
        .find(|(path, _)| path.as_slice() == field)
        .map(|(_, ty)| ty.as_str())?;
    for _ in 0..indexes {
        ty = ty.strip_suffix('!').unwrap_or(ty);
        ty = ty.strip_prefix('[')?.strip_suffix(']')?;
    }
    Some(ty.to_owned())
}

/// Sets `position` in `data` to `null`. An object the executor answered as `null` only because
/// every one of its fields failed is brought back as an object to hold the field.
fn put_null(data: &mut Value, position: &[PathSegment]) {
    let Some((last, parents)) = position.split_last() else {
        *data = Value::Null;
        return;
    };
    let mut current = data;
    for segment in parents {
        current = match (segment, current) {
            (PathSegment::Field(key), value) => {
                if *value == Value::Null {
                    *value = Value::Object(Default::default());
                }
                let Value::Object(object) = value else { return };
                let Some(child) = object.get_mut(key.as_str()) else {
                    return;
                };
                child
            }
            (PathSegment::Index(index), Value::List(items)) => match items.get_mut(*index) {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
    match (last, current) {
        (PathSegment::Field(key), value) => {
            if *value == Value::Null {
                *value = Value::Object(Default::default());
            }
            if let Value::Object(object) = value {
                object.insert(Name::new(key), Value::Null);
            }
        }
        (PathSegment::Index(index), Value::List(items)) => {
            if let Some(item) = items.get_mut(*index) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::value;

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.to_owned())
    }

    #[test]
    fn a_failed_nullable_field_is_present_as_null() {
        let mut data = value!({ "product": { "id": "1" } });
        let fields = Fields {
            failed: vec![(
                vec![field("product"), field("deletedAt")],
                "DateTime".into(),
            )],
            above: vec![(vec![field("product")], "Product".into())],
        };
        repair(&mut data, &fields);
        assert_eq!(
            data,
            value!({ "product": { "id": "1", "deletedAt": null } })
        );
    }

    #[test]
    fn a_failed_non_null_field_nulls_its_nearest_nullable_ancestor() {
        // products: ProductConnection!, edges: [ProductEdge!]!, node: Product!, stock: Int!
        let mut data = value!({ "products": { "edges": [
            { "node": { "id": "1" } }, { "node": { "id": "2", "stock": 3 } } ] } });
        let fields = Fields {
            failed: vec![(
                vec![
                    field("products"),
                    field("edges"),
                    PathSegment::Index(0),
                    field("node"),
                    field("stock"),
                ],
                "Int!".into(),
            )],
            above: vec![
                (vec![field("products")], "ProductConnection!".into()),
                (
                    vec![field("products"), field("edges")],
                    "[ProductEdge!]!".into(),
                ),
                (
                    vec![
                        field("products"),
                        field("edges"),
                        PathSegment::Index(0),
                        field("node"),
                    ],
                    "Product!".into(),
                ),
            ],
        };
        repair(&mut data, &fields);
        assert_eq!(data, Value::Null, "non-null all the way up to data");
    }

    #[test]
    fn a_nullable_list_item_takes_the_null() {
        // nodes: [Node]!, and a Node's id: ID! fails
        let mut data = value!({ "nodes": [ { "id": "1" }, { "sku": "B" } ] });
        let fields = Fields {
            failed: vec![(
                vec![field("nodes"), PathSegment::Index(1), field("id")],
                "ID!".into(),
            )],
            above: vec![(vec![field("nodes")], "[Node]!".into())],
        };
        repair(&mut data, &fields);
        assert_eq!(data, value!({ "nodes": [ { "id": "1" }, null ] }));
    }

    #[test]
    fn an_object_whose_only_field_failed_comes_back_as_an_object() {
        // The executor answers `null` for an object none of whose fields succeeded.
        let mut data = value!({ "product": null });
        let fields = Fields {
            failed: vec![(
                vec![field("product"), field("deletedAt")],
                "DateTime".into(),
            )],
            above: vec![(vec![field("product")], "Product".into())],
        };
        repair(&mut data, &fields);
        assert_eq!(data, value!({ "product": { "deletedAt": null } }));
    }

    #[test]
    fn a_failed_root_mutation_keeps_the_others() {
        let mut data = value!({ "first": { "id": "1" } });
        let fields = Fields {
            failed: vec![(vec![field("second")], "StockChange".into())],
            above: vec![],
        };
        repair(&mut data, &fields);
        assert_eq!(data, value!({ "first": { "id": "1" }, "second": null }));
    }
}
