use lockgate_bundle::{parse_manifest, parse_model};
use std::path::Path;

fn main() {
    let path = Path::new("db/1.0.0/meta.json");
    let cases: &[&str] = &[
        "",
        "  \n ",
        "[1, 2]",
        "\n  \"x\"",
        "42",
        "{\"files\": [}",
        "{\n  // comment\n  \"files\": []\n}",
        "{\"files\": [],}",
        "{} {}",
        "{\"files\": {}}",
        "{\"files\": 3}",
        "{\"files\": \"a.json\"}",
        "{\"files\": [3]}",
        "{\"files\": [[]]}",
        "{\"files\": [{\"model\": \"A\"}]}",
        "{\"files\": [{\"file\": \"a.json\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.txt\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"mode\": \"merge\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"mode\": 1}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"mode\": \"upsert\", \"updateAttributes\": true}]}",
        "{\"clearTables\": \"yes\"}",
        "{\"clearTables\": [\"A\", 1]}",
        "{\"contexts\": []}",
        "{\"contexts\": {\"/default\": 1}}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"format\": \"xml\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"onError\": \"ignore\"}]}",
        "{\"onError\": \"ignore\"}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"key\": \"\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"key\": []}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"key\": \"a,,b\"}]}",
        "{\"contexts\": {\"/default\": {}, \"/default/tenant1\": {}}, \"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"ctxId\": \"/default\"}, {\"model\": \"B\", \"file\": \"b.json\", \"ctxId\": \"/default/t9\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"ctxId\": \"/default\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"enabled\": \"no\"}]}",
        "{\"files\": [{\"model\": \"A\", \"file\": \"a.json\", \"file\": \"b.json\"}]}",
        "{\"files\": [], \"files\": []}",
        "{\"scripts\": []}",
        "{\"scripts\": {\"before\": \"a.sql\"}}",
        "{\"tenantColumn\": \"\"}",
        "{\"filez\": [], \"files\": [{\"modle\": \"A\", \"file\": \"a.js\", \"model\": \"B\"}], \"scripts\": {\"during\": []}}",
    ];
    for text in cases {
        match parse_manifest(path, text) {
            Ok(m) => println!("{text:?}\n  => ok {:?}\n", m.warnings),
            Err(e) => println!("{text:?}\n  => {e}\n"),
        }
    }
    let mpath = Path::new("db/1.0.0/ddl/customer.json");
    let models: &[&str] = &[
        "",
        "[]",
        "{\"properties\": {}}",
        "{\"name\": \"A\", \"properties\": []}",
        "{\"name\": \"A\", \"properties\": 1}",
        "{\"name\": \"A\", \"properties\": {\"age\": \"numbr\"}}",
        "{\"name\": \"A\", \"properties\": {\"age\": 3}}",
        "{\"name\": \"A\", \"properties\": {\"age\": {\"required\": true}}}",
        "{\"name\": \"A\", \"properties\": {\"code\": {\"type\": \"string\", \"dataType\": \"varchar(20); drop table x\"}}}",
        "{\"name\": \"A\", \"properties\": {\"code\": {\"type\": \"string\", \"postgresql\": {\"dataType\": \"text\\\"\"}}}}",
        "{\"name\": \"A\", \"properties\": {\"code\": {\"type\": \"string\", \"max\": -1}}}",
        "{\"name\": \"A\", \"properties\": {\"code\": {\"type\": \"string\", \"max\": 10, \"length\": 20}}}",
        "{\"name\": \"A\", \"properties\": {\"a\": \"string\", \"a\": \"number\"}}",
        "{\"name\": 3}",
        "{\"name\": \"A\", \"drop\": \"x\"}",
        "{\"name\": \"A\",\n \"properties\": {\n  \"a\": {\"type\": \"strin\"}\n }\n}",
    ];
    for text in models {
        match parse_model(mpath, text) {
            Ok(m) => println!("{text:?}\n  => ok {m:?}\n"),
            Err(e) => println!("{text:?}\n  => {e}\n"),
        }
    }
}
