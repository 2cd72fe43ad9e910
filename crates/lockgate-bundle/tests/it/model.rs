//! Model definitions: the loopback format with oe-Cloud's additions, properties in the
//! file's order, tables, tenancy, explicit destructive changes, and every error.

use std::path::Path;

use lockgate_bundle::{parse_model, ModelDef, PropType};
use serde_json::json;

const DDL: &str = "db/1.0.0/ddl/customer.json";

fn parse(text: &str) -> ModelDef {
    match parse_model(Path::new(DDL), text) {
        Ok(model) => model,
        Err(error) => panic!("{error}\n{text}"),
    }
}

#[test]
fn the_example_parses() {
    let model = parse(
        r#"{"name": "Customer", "base": "BaseEntity", "plural": "Customers", "table": "customer",
            "properties": {"name": {"type": "string", "required": true, "max": 100}, "age": "number",
                           "status": {"type": "string", "default": "active"}, "code": {"type": "string", "id": true}},
            "mixins": {"MultiTenancyMixin": true}, "autoscope": ["tenantId"]}"#,
    );
    assert_eq!(model.path, Path::new(DDL));
    assert_eq!(model.name, "Customer");
    assert_eq!(model.table.as_deref(), Some("customer"));
    assert_eq!(model.table_name(), "customer");
    assert!(model.multi_tenant);
    assert!(model.drop.is_empty());
    let names: Vec<&str> = model.properties.iter().map(|property| property.name.as_str()).collect();
    assert_eq!(names, ["name", "age", "status", "code"]);
    let name = &model.properties[0];
    assert_eq!(
        (name.prop_type, name.required, name.max, name.id),
        (PropType::String, true, Some(100), false)
    );
    let age = &model.properties[1];
    assert_eq!((age.prop_type, age.required, age.max), (PropType::Number, false, None));
    assert_eq!(model.properties[2].default, Some(json!("active")));
    let ids: Vec<&str> = model
        .id_properties()
        .iter()
        .map(|property| property.name.as_str())
        .collect();
    assert_eq!(ids, ["code"]);
    assert_eq!(
        model.property("age").map(|property| property.prop_type),
        Some(PropType::Number)
    );
}

#[test]
fn properties_keep_the_files_order() {
    let names = ["zeta", "alpha", "mu", "beta", "omega", "gamma", "a", "Z", "id", "_x"];
    let body: Vec<String> = names.iter().map(|name| format!(r#""{name}": "string""#)).collect();
    let model = parse(&format!(r#"{{"name": "M", "properties": {{{}}}}}"#, body.join(", ")));
    let parsed: Vec<&str> = model.properties.iter().map(|property| property.name.as_str()).collect();
    assert_eq!(parsed, names);
}

#[test]
fn tables() {
    let cases = [
        (r#"{"name": "M"}"#, None, "M"),
        (r#"{"name": "M", "table": "t"}"#, Some("t"), "t"),
        (r#"{"name": "M", "options": {"table": "o"}}"#, Some("o"), "o"),
        (
            r#"{"name": "M", "options": {"postgresql": {"table": "op"}}}"#,
            Some("op"),
            "op",
        ),
        (
            r#"{"name": "M", "postgresql": {"schema": "s", "table": "p"}}"#,
            Some("p"),
            "p",
        ),
        (r#"{"name": "M", "mysql": {"table": "my"}}"#, Some("my"), "my"),
        (r#"{"name": "M", "sqlite": {"table": "lite"}}"#, Some("lite"), "lite"),
        (
            r#"{"name": "M", "postgresql": {"table": "p"}, "table": "t"}"#,
            Some("t"),
            "t",
        ),
        (
            r#"{"name": "M", "postgresql": {"table": "p"}, "options": {"table": "o"}}"#,
            Some("o"),
            "o",
        ),
    ];
    for (text, table, table_name) in cases {
        let model = parse(text);
        assert_eq!(model.table.as_deref(), table, "{text}");
        assert_eq!(model.table_name(), table_name, "{text}");
    }
}

#[test]
fn tenancy() {
    let cases = [
        (r#"{"name": "M"}"#, false),
        (r#"{"name": "M", "mixins": {"MultiTenancyMixin": true}}"#, true),
        (r#"{"name": "M", "mixins": {"MultiTenancyMixin": {}}}"#, true),
        (r#"{"name": "M", "mixins": {"MultiTenancyMixin": false}}"#, false),
        (r#"{"name": "M", "mixins": {"AuditFieldsMixin": true}}"#, false),
        (r#"{"name": "M", "autoscope": []}"#, false),
        (r#"{"name": "M", "autoscope": ["tenantId"]}"#, true),
        (
            r#"{"name": "M", "mixins": {"MultiTenancyMixin": false}, "autoscope": ["tenantId"]}"#,
            true,
        ),
    ];
    for (text, multi_tenant) in cases {
        assert_eq!(parse(text).multi_tenant, multi_tenant, "{text}");
    }
}

#[test]
fn property_forms() {
    let model = parse(
        r#"{"name": "M", "drop": ["old", "older"], "properties": {
            "tags": ["string"],
            "list": {"type": ["number"]},
            "where": "GeoPoint",
            "born": {"type": "Date", "required": false},
            "address": {"type": {"street": "string"}},
            "count": {"type": "integer", "id": 1},
            "flag": "Boolean",
            "blob": "buffer",
            "extra": "any",
            "doc": "object",
            "arr": "array",
            "code": {"type": "string", "length": 20, "dataType": "char(20)"},
            "amount": {"type": "number", "precision": 12, "scale": 2, "postgresql": {"dataType": "numeric(12, 2)"}, "retype": true},
            "note": {"type": "string", "mysql": {"dataType": "varchar(500)", "dataLength": 500}, "postgresql": {"dataType": "text"}},
            "both": {"type": "string", "dataType": "text", "sqlite": {"dataType": "TEXT"}},
            "id2": {"type": "string", "id": 0}
        }}"#,
    );
    let by_name = |name: &str| model.property(name).unwrap_or_else(|| panic!("no {name}"));
    let types = [
        ("tags", PropType::Array),
        ("list", PropType::Array),
        ("where", PropType::Object),
        ("born", PropType::Date),
        ("address", PropType::Object),
        ("count", PropType::Integer),
        ("flag", PropType::Boolean),
        ("blob", PropType::Buffer),
        ("extra", PropType::Any),
        ("doc", PropType::Object),
        ("arr", PropType::Array),
    ];
    for (name, prop_type) in types {
        assert_eq!(by_name(name).prop_type, prop_type, "{name}");
    }
    assert_eq!(model.drop, ["old", "older"]);
    assert_eq!(by_name("code").max, Some(20));
    assert_eq!(by_name("code").data_type.as_deref(), Some("char(20)"));
    let amount = by_name("amount");
    assert_eq!(
        (amount.precision, amount.scale, amount.retype),
        (Some(12), Some(2), true)
    );
    assert_eq!(amount.data_type.as_deref(), Some("numeric(12, 2)"));
    // Engine sections are taken in the order postgresql, mysql, sqlite; "dataType" first.
    assert_eq!(by_name("note").data_type.as_deref(), Some("text"));
    assert_eq!(by_name("both").data_type.as_deref(), Some("text"));
    assert!(!by_name("tags").retype);
    let ids: Vec<&str> = model
        .id_properties()
        .iter()
        .map(|property| property.name.as_str())
        .collect();
    assert_eq!(ids, ["count"]);
    assert_eq!(PropType::Integer.to_string(), "integer");
}

#[test]
fn id_falls_back_to_the_property_named_id() {
    let model = parse(r#"{"name": "M", "properties": {"name": "string", "id": "number"}}"#);
    let ids: Vec<&str> = model
        .id_properties()
        .iter()
        .map(|property| property.name.as_str())
        .collect();
    assert_eq!(ids, ["id"]);
    let model = parse(r#"{"name": "M", "properties": {"name": "string"}}"#);
    assert!(model.id_properties().is_empty());
    let model = parse(
        r#"{"name": "M", "properties": {"a": {"type": "string", "id": true}, "id": "number", "b": {"type": "number", "id": 2}}}"#,
    );
    let ids: Vec<&str> = model
        .id_properties()
        .iter()
        .map(|property| property.name.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

/// `dataType` is spliced into DDL, so only `^[A-Za-z][A-Za-z ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$`
/// passes.
#[test]
fn data_types_are_checked() {
    let valid = [
        "text",
        "TEXT",
        "varchar(20)",
        "numeric(12, 2)",
        "numeric( 12 ,2 )",
        "double precision",
        "character varying(10)",
        "varchar (20)",
        "decimal(65,30)",
    ];
    let invalid = [
        "",
        " text",
        "1int",
        "varchar(20) ",
        "varchar(20);",
        "varchar(20); drop table customer",
        "text\"",
        "text--",
        "int[]",
        "varchar()",
        "varchar(a)",
        "numeric(1,2,3)",
        "numeric(1,)",
        "varchar(20",
        "varchar 20)",
        "timestamp(6) with time zone",
        "tinyint_unsigned",
        "vär",
    ];
    let model_with = |data_type: &str| {
        parse_model(
            Path::new(DDL),
            &json!({"name": "M", "properties": {"p": {"type": "string", "dataType": data_type}}}).to_string(),
        )
    };
    for data_type in valid {
        let model = model_with(data_type).unwrap_or_else(|error| panic!("{data_type}: {error}"));
        assert_eq!(model.properties[0].data_type.as_deref(), Some(data_type));
    }
    for data_type in invalid {
        let error = model_with(data_type).expect_err(data_type);
        assert!(
            error.to_string().contains("is not a plain column type"),
            "{data_type}: {error}"
        );
    }
}

/// Every error: (model file text, the error's Display).
#[test]
fn errors_name_the_file_the_place_and_the_property() {
    const TYPES: &str = "string, number, integer, boolean, date, object, array, buffer, any or geopoint";
    let cases: Vec<(&str, String)> = vec![
        ("", r#"db/1.0.0/ddl/customer.json: is empty: a model definition is an object such as {"name": "Customer", "properties": {…}}"#.into()),
        ("[]", r#"db/1.0.0/ddl/customer.json:1:1: is not a JSON object: a model definition is an object such as {"name": "Customer", "properties": {…}}"#.into()),
        ("{\"name\": \"M\",}", "db/1.0.0/ddl/customer.json:1:14: trailing comma: fix the JSON (comments and trailing commas are not allowed)".into()),
        (r#"{"properties": {}}"#, r#"db/1.0.0/ddl/customer.json: has no "name": give the model's name, as in {"name": "Customer", …}"#.into()),
        (r#"{"name": 3}"#, r#"db/1.0.0/ddl/customer.json:1:10: "name" is a number: use a string"#.into()),
        (r#"{"name": ""}"#, r#"db/1.0.0/ddl/customer.json:1:11: "name" is empty: give a name"#.into()),
        (r#"{"name": "M", "name": "N"}"#, r#"db/1.0.0/ddl/customer.json:1:20: "name" is given twice: keep one"#.into()),
        (r#"{"name": "M", "properties": []}"#, r#"db/1.0.0/ddl/customer.json:1:30: "properties" is an array: use an object such as {"name": {"type": "string", "required": true}, "age": "number"}"#.into()),
        (r#"{"name": "M", "properties": 1}"#, r#"db/1.0.0/ddl/customer.json:1:29: "properties" is a number: use an object such as {"name": {"type": "string", "required": true}, "age": "number"}"#.into()),
        (r#"{"name": "M", "properties": "x"}"#, r#"db/1.0.0/ddl/customer.json:1:31: "properties" is a string: use an object such as {"name": {"type": "string", "required": true}, "age": "number"}"#.into()),
        (r#"{"name": "M", "properties": {"age": "numbr"}}"#, format!(r#"db/1.0.0/ddl/customer.json:1:43: property "age": unknown type "numbr": use {TYPES}"#)),
        (r#"{"name": "M", "properties": {"age": {"type": "INT"}}}"#, format!(r#"db/1.0.0/ddl/customer.json:1:51: property "age": unknown type "INT": use {TYPES}"#)),
        (r#"{"name": "M", "properties": {"age": 3}}"#, format!(r#"db/1.0.0/ddl/customer.json:1:37: property "age": the type is a number: use {TYPES}"#)),
        (r#"{"name": "M", "properties": {"age": {"required": true}}}"#, format!(r#"db/1.0.0/ddl/customer.json:1:54: property "age": has no "type": give one of {TYPES}"#)),
        (r#"{"name": "M", "properties": {"": "string"}}"#, r#"db/1.0.0/ddl/customer.json:1:41: property "": the name is empty: name the property"#.into()),
        (r#"{"name": "M", "properties": {"a": "string", "a": "number"}}"#, r#"db/1.0.0/ddl/customer.json:1:47: property "a" is given twice: keep one"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "required": "yes"}}}"#, r#"db/1.0.0/ddl/customer.json:1:71: property "a": "required" is a string: use true or false"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "max": -1}}}"#, r#"db/1.0.0/ddl/customer.json:1:63: property "a": "max" is -1: use a whole number"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "max": 10, "length": 20}}}"#, r#"db/1.0.0/ddl/customer.json:1:77: property "a": "max" and "length" differ: give one of them"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "number", "scale": 2.5}}}"#, r#"db/1.0.0/ddl/customer.json:1:66: property "a": "scale" is 2.5: use a whole number from 0 to 4294967295"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "dataType": "varchar(20); drop table x"}}}"#, r#"db/1.0.0/ddl/customer.json:1:93: property "a": "dataType" "varchar(20); drop table x" is not a plain column type: use a type name with an optional (n) or (p, s), such as varchar(20) or numeric(12, 2)"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "postgresql": {"dataType": "text\""}}}}"#, r#"db/1.0.0/ddl/customer.json:1:90: property "a": "postgresql.dataType" "text\"" is not a plain column type: use a type name with an optional (n) or (p, s), such as varchar(20) or numeric(12, 2)"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "mysql": "text"}}}"#, r#"db/1.0.0/ddl/customer.json:1:69: property "a": "mysql" is a string: use an object"#.into()),
        (r#"{"name": "M", "drop": "x"}"#, r#"db/1.0.0/ddl/customer.json:1:25: "drop" must be an array of column names, such as ["old_column"]"#.into()),
        (r#"{"name": "M", "mixins": []}"#, r#"db/1.0.0/ddl/customer.json:1:26: "mixins" is an array: use an object"#.into()),
        (r#"{"name": "M", "autoscope": "tenantId"}"#, r#"db/1.0.0/ddl/customer.json:1:37: "autoscope" is a string: use an array of fields such as ["tenantId"]"#.into()),
        (r#"{"name": "M", "options": {"table": 1}}"#, r#"db/1.0.0/ddl/customer.json:1:37: "options.table" is a number: use a string"#.into()),
        (
            "{\"name\": \"M\",\n \"properties\": {\n  \"a\": {\"type\": \"strin\"},\n  \"b\": \"string\"\n }\n}",
            format!(r#"db/1.0.0/ddl/customer.json:3:24: property "a": unknown type "strin": use {TYPES}"#),
        ),
    ];
    crate::support::check_errors(&cases, |text| parse_model(Path::new(DDL), text), |e| e.is_invalid());
}

#[test]
fn keys_lockgate_has_no_use_for_are_ignored() {
    let model = parse(
        r#"{"name": "M", "base": "PersistedModel", "idInjection": false, "strict": true, "hidden": ["x"],
            "relations": {"orders": {"type": "hasMany", "model": "Order"}}, "acls": [], "validations": [],
            "properties": {"a": {"type": "string", "description": "an a", "index": true, "jsonSchema": {}}}}"#,
    );
    assert_eq!(model.properties.len(), 1);
}

/// What loopback users write beyond types: idInjection, generated ids, bases,
/// indexes (a property's and the model's three forms), `defaultFn: "now"`, a bare
/// `decimal`/`varchar` with its precision or length; and each unsupported form is an
/// error naming the property.
#[test]
fn loopback_keys_that_shape_the_table() {
    let model = parse(
        r#"{"name": "Order", "base": "Entity", "options": {"idInjection": false},
            "properties": {
              "no": {"type": "number", "id": true, "generated": true},
              "email": {"type": "string", "index": {"unique": true}},
              "city": {"type": "string", "index": true},
              "at": {"type": "date", "defaultFn": "now"},
              "total": {"type": "number", "dataType": "decimal", "precision": 10, "scale": 2},
              "code": {"type": "string", "mysql": {"dataType": "varchar"}, "length": 12}
            },
            "indexes": {
              "a_idx": {"keys": {"city": 1, "email": -1}, "options": {"unique": true}},
              "b_idx": {"columns": "city, at", "kind": "unique"},
              "c_idx": {"at": 1}
            }}"#,
    );
    assert_eq!(model.id_injection, Some(false));
    assert!(!model.injects_id());
    assert_eq!(model.base.as_deref(), Some("Entity"));
    assert!(model.properties[0].generated);
    assert_eq!(model.properties[3].default, Some(json!("$now")));
    assert_eq!(model.properties[4].data_type.as_deref(), Some("decimal(10,2)"));
    assert_eq!(model.properties[5].data_type.as_deref(), Some("varchar(12)"));
    let indexes: Vec<(Option<&str>, Vec<&str>, bool)> = model
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.as_deref(),
                i.columns.iter().map(String::as_str).collect(),
                i.unique,
            )
        })
        .collect();
    assert_eq!(
        indexes,
        vec![
            (None, vec!["email"], true),
            (None, vec!["city"], false),
            (Some("a_idx"), vec!["city", "email"], true),
            (Some("b_idx"), vec!["city", "at"], true),
            (Some("c_idx"), vec!["at"], false),
        ]
    );
    // idInjection is on unless the model turns it off, and only without an id property.
    assert!(parse(r#"{"name": "M", "properties": {"a": "string"}}"#).injects_id());
    assert!(!parse(r#"{"name": "M", "properties": {"id": "string"}}"#).injects_id());
    assert!(!parse(r#"{"name": "M", "idInjection": false, "properties": {"a": "string"}}"#).injects_id());

    let cases: Vec<(&str, String)> = vec![
        (r#"{"name": "M", "properties": {"a": {"type": "string", "id": true, "generated": true}}}"#, r#"db/1.0.0/ddl/customer.json:1:83: property "a": is a generated id of type string: SQL databases generate integers, so use "type": "number""#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "number", "generated": true}}}"#, r#"db/1.0.0/ddl/customer.json:1:71: property "a": is "generated" but not the id: give it "id": true, or remove "generated""#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "defaultFn": "uuidv4"}}}"#, r#"db/1.0.0/ddl/customer.json:1:75: property "a": "defaultFn" "uuidv4" is not supported (only "now" is): give the values in the data files, or a "default""#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "postgresql": {"columnName": "b"}}}}"#, r#"db/1.0.0/ddl/customer.json:1:87: property "a": "postgresql.columnName" is not supported: Lockgate names a column after its property, so rename the property"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "string", "index": "yes"}}}"#, r#"db/1.0.0/ddl/customer.json:1:68: property "a": "index" is a string: use true or {"unique": true}"#.into()),
        (r#"{"name": "M", "idInjection": "no"}"#, r#"db/1.0.0/ddl/customer.json:1:33: "idInjection" is a string: use true or false"#.into()),
        (r#"{"name": "M", "indexes": {"i": {"columns": 3}}}"#, r#"db/1.0.0/ddl/customer.json:1:46: index "i" has "columns" that are not a string: use {"keys": {"column": 1}, "options": {"unique": true}} or {"columns": "a, b", "kind": "unique"}"#.into()),
        (r#"{"name": "M", "properties": {"a": {"type": "number", "dataType": "decimal", "scale": 2}}}"#, r#"db/1.0.0/ddl/customer.json:1:87: property "a": gives a "scale" without a "precision": give both"#.into()),
    ];
    crate::support::check_errors(&cases, |text| parse_model(Path::new(DDL), text), |e| e.is_invalid());
}
