//! Restoring a backup (`shoal snapshot restore`): what `GET
//! /peers/snapshot` gave, written into a data directory whose server then
//! starts a new group with the backup's objects, as the first server of a
//! cluster (the others join it again).

use std::path::Path;

use crate::peers::BackupFiles;

/// Makes `data_dir` hold the backup `backup`: the files every server
/// shares (when the directory has none yet; a directory of another
/// cluster is refused) and the store's state, with no log and no other
/// member. `encryption_config` is the server's
/// `--encryption-provider-config`, when it has one. Returns the backup's
/// revision.
pub fn restore(
    data_dir: &Path,
    backup: &[u8],
    encryption_config: Option<&Path>,
) -> Result<u64, String> {
    let BackupFiles { files } = serde_json::from_slice(backup)
        .map_err(|e| format!("not a backup of a shoal cluster: {e}"))?;
    let ca = files
        .get("ca.crt")
        .ok_or("the backup holds no cluster CA: not a backup of a shoal cluster")?;
    let pki_dir = data_dir.join("pki");
    match std::fs::read_to_string(pki_dir.join("ca.crt")) {
        Ok(mine) if mine != *ca => {
            return Err(format!(
                "{} belongs to another cluster (its CA is not the backup's): restore into an empty data directory",
                data_dir.display()
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            shoal_pki::write_shared(&pki_dir, &files).map_err(|e| e.to_string())?;
        }
        Err(e) => return Err(format!("{}: {e}", pki_dir.display())),
    }
    let sealer = match encryption_config {
        Some(path) => crate::encryption::from_file(path),
        None => crate::encryption::default_sealer(&pki_dir),
    }?;
    let revision = shoal_store::Store::restore(&data_dir.join("store"), backup, Some(sealer))
        .map_err(|e| e.to_string())?;
    // The server starting here is the first member of a new group.
    match std::fs::remove_file(data_dir.join("member-id")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", data_dir.join("member-id").display()));
        }
        _ => {}
    }
    Ok(revision)
}
