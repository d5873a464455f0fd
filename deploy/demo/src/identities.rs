//! The demo directory, pushed through SCIM the way an IdP would.
//!
//! | user | groups | department |
//! |---|---|---|
//! | alice@example.com | Sales | Sales |
//! | bob@example.com | Legal | Legal |
//! | carol@example.com | Engineering (nested in R&D) | Platform |
//! | dave@example.com | — | Support |

use crate::scim::ScimClient;
use std::collections::BTreeMap;

pub const USERS: &[(&str, &str, &str)] = &[
    ("alice@example.com", "Alice Adams", "Sales"),
    ("bob@example.com", "Bob Brown", "Legal"),
    ("carol@example.com", "Carol Chen", "Platform"),
    ("dave@example.com", "Dave Diaz", "Support"),
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
    for (user_name, display, dept) in USERS {
        let id = match scim.find("/Users", "userName", user_name).await? {
            Some(id) => id,
            None => scim.create_user(user_name, display, Some(dept)).await?,
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
