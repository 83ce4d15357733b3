//! `snapshots --latest N`, `--group-by`, `--compact`, and one time format in tables.

mod common;

use common::{Env, code, stderr};

#[test]
fn snapshots_can_be_grouped_and_cut_to_the_latest() {
    let env = Env::new();
    env.init();
    let a = env.path("a");
    let b = env.path("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for i in 0..3 {
        std::fs::write(a.join("f"), format!("{i}")).unwrap();
        env.ok(&["backup", "--tag", "x", a.to_str().unwrap()]);
    }
    env.ok(&["backup", "--tag", "y", b.to_str().unwrap()]);
    env.ok(&["backup", "--host", "other", b.to_str().unwrap()]);

    let all: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5);
    // The newest of each host+paths group: a's last, b's on this host, b's on the other.
    let latest: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json", "--latest", "1"])).unwrap();
    let latest = latest.as_array().unwrap();
    assert_eq!(latest.len(), 3, "{latest:?}");
    let newest_a = &all.as_array().unwrap()[2];
    assert!(latest.iter().any(|s| s["id"] == newest_a["id"]));

    let grouped: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--group-by", "tags", "--latest", "2"])).unwrap();
    let groups = grouped.as_array().unwrap();
    assert_eq!(groups.len(), 3, "{grouped}");
    let x = groups.iter().find(|g| g["group_key"]["tags"] == serde_json::json!(["x"])).unwrap();
    assert_eq!(x["snapshots"].as_array().unwrap().len(), 2);

    let text = env.ok(&["snapshots", "--group-by", "host"]);
    assert!(text.contains("group: host other") && text.lines().last() == Some("5 snapshots"), "{text}");
    let compact = env.ok(&["snapshots", "--compact"]);
    let header = compact.lines().next().unwrap();
    assert!(header.contains("Tags") && !header.contains("Paths"), "{compact}");
    // Table times carry their zone offset.
    let row = compact.lines().nth(2).unwrap();
    assert!(row.contains(" +") || row.contains(" -"), "{row}");

    let bad = env.run(&["snapshots", "--group-by", "colour"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    assert_eq!(code(&env.run(&["snapshots", "--latest", "0"])), 2);
}
