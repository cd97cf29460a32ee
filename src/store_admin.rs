//! `shoal member` and `shoal snapshot`: the store's group as its
//! administrator sees it, through the API (`/peers/members`,
//! `/peers/snapshot`; RBAC as for any non-resource URL), and a backup
//! restored into a data directory.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context, Result};
use shoal_apiserver::peers::MemberStatus;

/// Prints the members of the store's group, as the leader knows them.
pub async fn list(kubeconfig: &Path) -> Result<()> {
    let client = super::token::client(kubeconfig).await?;
    let text = client
        .request_text(http::Request::get("/peers/members").body(Vec::new())?)
        .await
        .context("listing the members")?;
    let members: Vec<MemberStatus> = serde_json::from_str(&text).context("the server's answer")?;
    let mut out = String::from("ID                     ADDRESS                  ROLE\n");
    for m in members {
        let role = match (m.leader, m.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        out.push_str(&format!("{:<22} {:<24} {role}\n", m.id, m.addr));
    }
    print!("{out}");
    Ok(())
}

/// Removes member `id` from the store's group (a dead server, before a
/// new one takes its place).
pub async fn remove(kubeconfig: &Path, id: u64) -> Result<()> {
    let client = super::token::client(kubeconfig).await?;
    client
        .request_text(http::Request::delete(format!("/peers/members/{id}")).body(Vec::new())?)
        .await
        .with_context(|| format!("removing member {id}"))?;
    println!("member {id} removed");
    Ok(())
}

/// Writes a backup of the cluster (the store at one revision and the
/// files every server shares) to `file`, readable by its owner only.
pub async fn save(kubeconfig: &Path, file: &Path) -> Result<()> {
    let client = super::token::client(kubeconfig).await?;
    let body = client
        .request_text(http::Request::get("/peers/snapshot").body(Vec::new())?)
        .await
        .context("taking the snapshot")?;
    let tmp = file.with_extension("partial");
    {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        out.write_all(body.as_bytes())?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "snapshot saved to {} ({} bytes)",
        file.display(),
        body.len()
    );
    Ok(())
}

/// Restores the backup in `file` into `data_dir` (its server stopped).
pub fn restore(file: &Path, data_dir: &Path, encryption_config: Option<&Path>) -> Result<()> {
    let backup = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    super::private_dir(data_dir)?;
    let revision = shoal_apiserver::backup::restore(data_dir, &backup, encryption_config)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("restoring {} into {}", file.display(), data_dir.display()))?;
    println!(
        "restored {} at revision {revision} into {}: start its server with `shoal server --cluster-init --data-dir {}` (or `shoal up`); the other servers join it again with fresh data directories",
        file.display(),
        data_dir.display(),
        data_dir.display()
    );
    Ok(())
}
