//! The demo directory, pushed through SCIM the way an IdP would.
//!
//! | user | groups | department | clearance (custom extension) |
//! |---|---|---|---|
//! | alice@example.com | Sales | Sales | — |
//! | bob@example.com | Legal | Legal | 3 |
//! | carol@example.com | Engineering (nested in R&D) | Platform | 2 |
//! | dave@example.com | — | Support | — |

use crate::configs::DEMO_EXTENSION;
use crate::scim::ScimClient;
use serde_json::json;
use std::collections::BTreeMap;

/// `(userName, displayName, department, clearance)`.
pub const USERS: &[(&str, &str, &str, Option<i64>)] = &[
    ("alice@example.com", "Alice Adams", "Sales", None),
    ("bob@example.com", "Bob Brown", "Legal", Some(3)),
    ("carol@example.com", "Carol Chen", "Platform", Some(2)),
    ("dave@example.com", "Dave Diaz", "Support", None),
];

/// Groups and their user members; `R&D` contains the group `Engineering`.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("Sales", &["alice@example.com"]),
    ("Legal", &["bob@example.com"]),
    ("Engineering", &["carol@example.com"]),
];

/// The SCIM ids of the demo identities.
#[derive(Debug, Clone, Default)]
pub struct DemoIds {
    pub users: BTreeMap<String, String>,
    pub groups: BTreeMap<String, String>,
}

impl DemoIds {
    pub fn user(&self, name: &str) -> &str {
        self.users.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn group(&self, name: &str) -> &str {
        self.groups.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Creates whatever of the demo directory does not exist yet (so a second quickstart run on
/// the same data directory is a no-op) and returns every id.
pub async fn seed(scim: &ScimClient) -> anyhow::Result<DemoIds> {
    let mut ids = DemoIds::default();
    for (user_name, display, dept, clearance) in USERS {
        let id = match scim.find("/Users", "userName", user_name).await? {
            Some(id) => id,
            None => {
                let extensions: Vec<(&str, serde_json::Value)> = clearance
                    .iter()
                    .map(|c| (DEMO_EXTENSION, json!({ "clearance": c })))
                    .collect();
                scim.create_user_with(user_name, display, Some(dept), &extensions)
                    .await?
            }
        };
        ids.users.insert((*user_name).to_owned(), id);
    }
    for (name, members) in GROUPS {
        let member_ids: Vec<&str> = members.iter().map(|m| ids.user(m)).collect();
        let id = match scim.find("/Groups", "displayName", name).await? {
            Some(id) => id,
            None => scim.create_group(name, &member_ids).await?,
        };
        ids.groups.insert((*name).to_owned(), id);
    }
    let id = match scim.find("/Groups", "displayName", "R&D").await? {
        Some(id) => id,
        None => {
            scim.create_group("R&D", &[ids.group("Engineering")])
                .await?
        }
    };
    ids.groups.insert("R&D".to_owned(), id);
    Ok(ids)
}
