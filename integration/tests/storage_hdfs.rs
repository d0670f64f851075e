//! The conformance suite against a real HDFS 2.7.3 NameNode and DataNode.

use strata_integration::conformance::{self, Backend, StorageCheck};

fn hdfs_document(name_node: &str, root: &str) -> String {
    format!("[storage]\nkind = \"hdfs\"\nname_node = \"{name_node}\"\nroot = \"{root}\"\n")
}

fn main() {
    let server = strata_integration::start_or_fail("hdfs");
    let name_node = server.setting("HDFS_NAME_NODE");
    let config = hdfs_document(&name_node, "/strata");
    let checks = vec![
        StorageCheck::passes(config.clone()),
        StorageCheck::fails(
            "closed_port",
            hdfs_document("hdfs://127.0.0.1:1", "/strata"),
            "namenode-unreachable",
        ),
    ];
    let trials = conformance::trials(Backend {
        label: "hdfs".to_string(),
        config,
        restricted_config: None,
        checks,
    });
    strata_integration::run_suite("hdfs suite", server, trials)
}
