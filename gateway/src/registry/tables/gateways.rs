//! The gateways sharing the registry: each one's addresses and tunnel networks, recorded
//! at its start. Tunnel networks never overlap: a laptop's address names one gateway,
//! and the internal network routes it there.

use ztgw_config::policy::Network;

use crate::registry::sql::Db;
use crate::registry::values::{from_ts, ts};
use crate::registry::{GatewayRecord, RegistryError};

pub(super) fn register(db: &impl Db, g: &GatewayRecord) -> Result<(), RegistryError> {
    let mine = networks(&g.name, &g.pools)?;
    db.write(|sql| {
        // A row lock every registration takes first: two gateways starting together
        // check their networks one after the other.
        sql.execute(
            "UPDATE meta SET value = value WHERE key = 'crl_number'",
            &[],
        )?;
        for other in all_in(sql)? {
            if other.name == g.name {
                continue;
            }
            for (a, text) in &mine {
                for (b, other_text) in networks(&other.name, &other.pools)? {
                    if a.covers(&b) || b.covers(a) {
                        return Err(RegistryError::Duplicate(format!(
                            "tunnel network {text} overlaps gateway {}'s {other_text}: give each gateway a network of its own",
                            other.name
                        )));
                    }
                }
            }
        }
        sql.execute("DELETE FROM gateways WHERE name = ?1", &[(&g.name).into()])?;
        sql.execute(
            "INSERT INTO gateways (name, control, endpoint, pools, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                (&g.name).into(),
                (&g.control).into(),
                (&g.endpoint).into(),
                g.pools.join(" ").as_str().into(),
                ts(g.started_at).into(),
            ],
        )?;
        Ok(())
    })
}

pub(super) fn all(db: &impl Db) -> Result<Vec<GatewayRecord>, RegistryError> {
    db.read(all_in)
}

fn all_in(sql: &mut dyn crate::registry::sql::Sql) -> Result<Vec<GatewayRecord>, RegistryError> {
    sql.query_all(
        "SELECT name, control, endpoint, pools, started_at FROM gateways ORDER BY name",
        &[],
        |r| {
            Ok(GatewayRecord {
                name: r.text(0)?,
                control: r.text(1)?,
                endpoint: r.text(2)?,
                pools: r.text(3)?.split_whitespace().map(str::to_owned).collect(),
                started_at: from_ts(r.int(4)?)?,
            })
        },
    )
}

fn networks<'a>(
    gateway: &str,
    pools: &'a [String],
) -> Result<Vec<(Network, &'a str)>, RegistryError> {
    pools
        .iter()
        .map(|p| {
            Network::parse(p).map(|n| (n, p.as_str())).map_err(|e| {
                RegistryError::Corrupt(format!("gateway {gateway}'s network {p}: {e}"))
            })
        })
        .collect()
}
