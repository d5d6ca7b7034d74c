//! `mirrorbox pin SOURCE SNAPSHOT` and `mirrorbox unpin SOURCE`, here or in the running
//! server (see [`crate::pin`] for what a pin means).

use anyhow::bail;

use crate::admin;
use crate::config::Config;

use super::check_sources;
use super::remote::{ask_server, open_or_busy};

/// Pins `source` to `snapshot`, or unpins it (`None`), and says what is current now.
pub(crate) fn run(config: Config, source: &str, snapshot: Option<String>) -> anyhow::Result<i32> {
    check_sources(&config, &[source.to_string()])?;
    let current = match open_or_busy(config)? {
        Ok(app) => app.set_pin(source, snapshot.as_deref())?,
        Err(config) => {
            let request = admin::Request::Pin {
                source: source.to_string(),
                snapshot: snapshot.clone(),
            };
            let replies = match ask_server(&config, &request, &[])? {
                Ok(replies) => replies,
                Err(code) => return Ok(code),
            };
            match replies.first() {
                Some(reply) if reply.ok => reply.message.clone(),
                Some(reply) => bail!("{}", reply.message),
                None => bail!("the server gave no answer"),
            }
        }
    };
    match snapshot {
        Some(_) => println!(
            "{source}: pinned to snapshot {current}; new syncs are retained but not published until `mirrorbox unpin {source}`.
             apt clients that already saw a newer InRelease keep it: point them at /.snapshots/{source}/{current}/ to roll them back."
        ),
        None => println!("{source}: unpinned; current snapshot {current}"),
    }
    Ok(0)
}
