//! The device map: the directory as the recorder needs it when a call is answered, in memory.
//!
//! Built from the rows in one pass ([`DeviceMap::build`], [`DeviceMap::load`]); a lookup is
//! a few hash-map probes. The recorder rebuilds it when [`version`] changes: triggers bump
//! that number in the same transaction as any change to agents or devices.
//!
//! [`DeviceMap::attribute`] finds the agent of a call and says what kind of call it is:
//!
//! - **Outbound**: the caller is an agent's device and the callee is not; the customer is
//!   the number dialled (the Request-URI's user, else the callee's).
//! - **Inbound**: the callee is an agent's device and the caller is not; the customer is the
//!   caller.
//! - **Direct Agent Access**: an inbound call addressed to the agent personally, by the
//!   agent's DAA number (in the Request-URI or the To header), or a call from one agent's
//!   device to another's, which reached the callee without a queue. The agent is the callee.
//!
//! A party is matched by its SIP URI (`user@host`), then its user part as an extension
//! device, then the agent's DAA number (callee only), then the agent's own extension, then
//! each of its IP addresses (where its SIP came from, its Contact, its SDP media address), then
//! the MAC address its SIP frames came from; the first match wins.

use std::collections::HashMap;
use std::net::IpAddr;

use tapline_store::rusqlite::Connection;

use crate::device::{
    DeviceKind, RecordingType, canonical_ip, normalise_extension, normalise_sip_uri,
};
use crate::scope::Scope;
use crate::{Agent, Device, DirectoryError, agents, devices};

/// What the recorder stores about an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedAgent {
    /// The agents row (`recordings.agent_ref`).
    pub id: i64,
    pub agent_id: String,
    pub name: String,
    pub extension: Option<String>,
    pub recording_percentage: Option<u8>,
}

#[derive(Debug, Clone)]
struct Entry {
    agent: usize,
    recording_group: Option<String>,
    recording_type: RecordingType,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct DeviceMap {
    agents: Vec<MappedAgent>,
    devices: HashMap<(DeviceKind, String), Entry>,
    daa_numbers: HashMap<String, usize>,
    extensions: HashMap<String, usize>,
}

/// One side of a call, as signalling showed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallParty<'a> {
    /// The From (caller) or To (callee) URI, as written.
    pub uri: Option<&'a str>,
    /// That URI's user part: usually the number.
    pub user: Option<&'a str>,
    /// Where its signalling and media came from or went to.
    pub addresses: &'a [IpAddr],
    /// The Ethernet source address of its SIP: the phone's own, when the SPAN port mirrors
    /// the phones' switch.
    pub mac: Option<[u8; 6]>,
}

/// What the recorder knows of a call when it is answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallView<'a> {
    pub caller: CallParty<'a>,
    pub callee: CallParty<'a>,
    /// The INVITE's Request-URI user: the number dialled.
    pub dialled: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Inbound,
    Outbound,
    DirectAgentAccess,
}

impl CallType {
    /// As the index files and `recordings.call_type` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Inbound => "Inbound",
            CallType::Outbound => "Outbound",
            CallType::DirectAgentAccess => "Direct Agent Access",
        }
    }
}

/// How a party was matched to its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'m> {
    pub agent: &'m MappedAgent,
    /// The device association matched, if it was one (not the agent's own extension or DAA
    /// number): kind and normalised value.
    pub device: Option<(DeviceKind, String)>,
    pub recording_group: Option<&'m str>,
    /// The device's; `None` when the agent was found by extension or DAA number alone.
    pub recording_type: Option<RecordingType>,
}

impl Matched<'_> {
    /// The extension to store with the recording: the device's, when an extension device
    /// matched, otherwise the agent's.
    pub fn extension(&self) -> Option<&str> {
        match &self.device {
            Some((DeviceKind::Extension, value)) => Some(value),
            _ => self.agent.extension.as_deref(),
        }
    }
}

/// A call's agent, type and customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution<'m> {
    pub matched: Matched<'m>,
    pub call_type: CallType,
    pub customer_number: Option<String>,
}

impl DeviceMap {
    /// The map of these rows (agents and their device associations).
    pub fn build(agents: &[Agent], devices: &[Device]) -> DeviceMap {
        let mut map = DeviceMap::default();
        let mut index = HashMap::with_capacity(agents.len());
        for agent in agents {
            let slot = map.agents.len();
            index.insert(agent.id, slot);
            let fields = &agent.fields;
            map.agents.push(MappedAgent {
                id: agent.id,
                agent_id: fields.agent_id.clone(),
                name: fields.name.clone(),
                extension: fields.extension.clone(),
                recording_percentage: fields.recording_percentage,
            });
            if let Some(daa) = &fields.daa_number {
                map.daa_numbers.insert(daa.clone(), slot);
            }
            if let Some(extension) = &fields.extension {
                map.extensions.insert(extension.clone(), slot);
            }
        }
        for device in devices {
            let Some(&agent) = index.get(&device.agent) else {
                continue;
            };
            let fields = &device.fields;
            map.devices.insert(
                (fields.kind, fields.value.clone()),
                Entry {
                    agent,
                    recording_group: fields.recording_group.clone(),
                    recording_type: fields
                        .recording_type
                        .unwrap_or(fields.kind.default_recording_type()),
                },
            );
        }
        map
    }

    /// The map of the directory as stored.
    pub fn load(conn: &Connection) -> Result<DeviceMap, DirectoryError> {
        let everything = Scope::everything();
        let agents = agents::list_in(conn, &everything)?;
        let devices = devices::list_in(conn, &everything)?;
        Ok(DeviceMap::build(&agents, &devices))
    }

    pub fn agents(&self) -> usize {
        self.agents.len()
    }

    /// The agent of a device association, by kind and value (normalised here).
    pub fn device(&self, kind: DeviceKind, value: &str) -> Option<Matched<'_>> {
        let value = kind.normalise(value).ok()?;
        self.entry(kind, value)
    }

    fn entry(&self, kind: DeviceKind, value: String) -> Option<Matched<'_>> {
        let entry = self.devices.get(&(kind, value.clone()))?;
        Some(Matched {
            agent: &self.agents[entry.agent],
            device: Some((kind, value)),
            recording_group: entry.recording_group.as_deref(),
            recording_type: Some(entry.recording_type),
        })
    }

    fn agent_only(&self, slot: usize) -> Matched<'_> {
        Matched {
            agent: &self.agents[slot],
            device: None,
            recording_group: None,
            recording_type: None,
        }
    }

    fn daa(&self, number: Option<&str>) -> Option<usize> {
        self.daa_numbers.get(number?.trim()).copied()
    }

    /// The agent whose device `party` is. `dialled` is tried as an extension too (the
    /// callee's Request-URI), and DAA numbers are tried only for the callee.
    fn party(
        &self,
        party: &CallParty<'_>,
        dialled: Option<&str>,
        callee: bool,
    ) -> Option<Matched<'_>> {
        let sip_uri = party
            .uri
            .and_then(|uri| normalise_sip_uri(uri).ok())
            .and_then(|uri| self.entry(DeviceKind::SipUri, uri));
        let users = || [dialled, party.user].into_iter().flatten();
        let extension_device = || {
            users().find_map(|user| {
                let user = normalise_extension(user).ok()?;
                self.entry(DeviceKind::Extension, user)
            })
        };
        let daa = || {
            users()
                .find_map(|user| self.daa(Some(user)))
                .filter(|_| callee)
                .map(|slot| self.agent_only(slot))
        };
        let own_extension = || {
            users().find_map(|user| {
                let user = normalise_extension(user).ok()?;
                self.extensions
                    .get(&user)
                    .map(|&slot| self.agent_only(slot))
            })
        };
        let address = || {
            party
                .addresses
                .iter()
                .find_map(|ip| self.entry(DeviceKind::PhoneIp, canonical_ip(*ip).to_string()))
        };
        let mac = || {
            let [a, b, c, d, e, f] = party.mac?;
            let text = format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}");
            self.entry(DeviceKind::Mac, text)
        };
        sip_uri
            .or_else(extension_device)
            .or_else(daa)
            .or_else(own_extension)
            .or_else(address)
            .or_else(mac)
    }

    /// The call's agent, type and customer number; `None` when neither side is an agent's.
    pub fn attribute(&self, call: &CallView<'_>) -> Option<Attribution<'_>> {
        let caller = self.party(&call.caller, None, false);
        let callee = self.party(&call.callee, call.dialled, true);
        let caller_number = call.caller.user.map(str::to_owned);
        match (caller, callee) {
            (Some(caller), None) => Some(Attribution {
                matched: caller,
                call_type: CallType::Outbound,
                customer_number: call.dialled.or(call.callee.user).map(str::to_owned),
            }),
            (None, Some(callee)) => {
                let addressed_personally =
                    [call.dialled, call.callee.user].into_iter().any(|number| {
                        self.daa(number)
                            .is_some_and(|slot| self.agents[slot].id == callee.agent.id)
                    });
                let call_type = if addressed_personally {
                    CallType::DirectAgentAccess
                } else {
                    CallType::Inbound
                };
                Some(Attribution {
                    matched: callee,
                    call_type,
                    customer_number: caller_number,
                })
            }
            (Some(_), Some(callee)) => Some(Attribution {
                matched: callee,
                call_type: CallType::DirectAgentAccess,
                customer_number: caller_number,
            }),
            (None, None) => None,
        }
    }
}

/// The directory's version: it changes with every change to agents or device associations.
pub fn version(conn: &Connection) -> Result<i64, DirectoryError> {
    Ok(conn.query_row(
        "SELECT version FROM directory_version WHERE id = 1",
        [],
        |row| row.get(0),
    )?)
}
