//! The clouds an agent can be installed for and their endpoints, in one table. Enters: an environment name
//! (`--environment`, `[tenant] environment`, or the real installer's `ENVIRONMENTNAME=`). Leaves: the
//! [`Environment`] and its [`CloudEndpoints`], which the tenant reports (token issuer, OpenID
//! configuration) and the agent records at registration and shows in `agent status`.
//!
//! The hosts are Microsoft's published ones (learn.microsoft.com: "national clouds" for sign-in and Graph;
//! Cloud Sync's prerequisites for the agent's allow-list). China's agent hosts follow the same naming and
//! are marked unverified in Microsoft's own Cloud Sync documentation.

/// The cloud a tenant belongs to, as the real agent's `ENVIRONMENTNAME` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Environment {
    /// Microsoft Entra ID global (login.microsoftonline.com).
    AzureCloud,
    /// Microsoft Entra ID for US Government (login.microsoftonline.us).
    AzureUSGovernment,
    /// Microsoft Entra ID operated by 21Vianet (login.chinacloudapi.cn).
    AzureChinaCloud,
}

/// One cloud's endpoint set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The environment's name (`ENVIRONMENTNAME`, `--environment`, the wire format).
    pub name: &'static str,
    /// The sign-in authority's host (tokens' issuer is `https://{login_host}/{tenant}/v2.0`).
    pub login_host: &'static str,
    /// The OpenID configuration's `cloud_instance_name`.
    pub cloud_instance_name: &'static str,
    /// Microsoft Graph's host.
    pub graph_host: &'static str,
    /// The host patterns the provisioning agent must reach over 443 (its firewall allow-list).
    pub agent_hosts: &'static [&'static str],
}

/// `AzureCloud`'s endpoints.
const AZURE_CLOUD: CloudEndpoints = CloudEndpoints {
    name: "AzureCloud",
    login_host: "login.microsoftonline.com",
    cloud_instance_name: "microsoftonline.com",
    graph_host: "graph.microsoft.com",
    agent_hosts: &[
        "*.msappproxy.net",
        "*.servicebus.windows.net",
        "login.windows.net",
    ],
};

/// `AzureUSGovernment`'s endpoints.
const AZURE_US_GOVERNMENT: CloudEndpoints = CloudEndpoints {
    name: "AzureUSGovernment",
    login_host: "login.microsoftonline.us",
    cloud_instance_name: "microsoftonline.us",
    graph_host: "graph.microsoft.us",
    agent_hosts: &[
        "*.msappproxy.us",
        "*.servicebus.usgovcloudapi.net",
        "login.windows.us",
    ],
};

/// `AzureChinaCloud`'s endpoints.
const AZURE_CHINA_CLOUD: CloudEndpoints = CloudEndpoints {
    name: "AzureChinaCloud",
    login_host: "login.chinacloudapi.cn",
    cloud_instance_name: "partner.microsoftonline.cn",
    graph_host: "microsoftgraph.chinacloudapi.cn",
    agent_hosts: &["*.msappproxy.cn", "*.servicebus.chinacloudapi.cn"],
};

/// Every environment with its endpoints: the one table (docs/tenant.md § Environments).
pub const ENVIRONMENTS: [(Environment, CloudEndpoints); 3] = [
    (Environment::AzureCloud, AZURE_CLOUD),
    (Environment::AzureUSGovernment, AZURE_US_GOVERNMENT),
    (Environment::AzureChinaCloud, AZURE_CHINA_CLOUD),
];

impl Environment {
    /// This environment's endpoints (its row of [`ENVIRONMENTS`]).
    pub fn endpoints(self) -> &'static CloudEndpoints {
        match self {
            Environment::AzureCloud => &AZURE_CLOUD,
            Environment::AzureUSGovernment => &AZURE_US_GOVERNMENT,
            Environment::AzureChinaCloud => &AZURE_CHINA_CLOUD,
        }
    }

    /// The environment's name as used on the command line and in the wire format.
    pub fn as_str(self) -> &'static str {
        self.endpoints().name
    }

    /// The real cloud's login host, which the emulator reports in its tokens and OpenID configuration.
    pub fn login_host(self) -> &'static str {
        self.endpoints().login_host
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ENVIRONMENTS
            .iter()
            .find(|(_, c)| c.name == s)
            .map(|(e, _)| *e)
            .ok_or_else(|| {
                let names: Vec<&str> = ENVIRONMENTS.iter().map(|(_, c)| c.name).collect();
                format!("unknown environment {s:?}: expected {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every variant has its own row, its name parses back to it, and serde's name is the table's.
    #[test]
    fn every_environment_has_one_row_and_round_trips() {
        for e in [
            Environment::AzureCloud,
            Environment::AzureUSGovernment,
            Environment::AzureChinaCloud,
        ] {
            assert_eq!(
                ENVIRONMENTS.iter().filter(|(x, _)| *x == e).count(),
                1,
                "{e:?}"
            );
            assert_eq!(e.as_str().parse::<Environment>().unwrap(), e);
            assert_eq!(
                serde_json::to_string(&e).unwrap(),
                format!("\"{}\"", e.as_str())
            );
        }
        assert!(
            "AzureGermanCloud"
                .parse::<Environment>()
                .unwrap_err()
                .contains("AzureUSGovernment")
        );
    }

    /// The hosts Microsoft publishes for each national cloud (learn.microsoft.com, "National cloud
    /// deployments" and Cloud Sync's prerequisites), not the code's own idea of them.
    #[test]
    fn hosts_are_microsofts_published_ones() {
        let gov = Environment::AzureUSGovernment.endpoints();
        assert_eq!(gov.login_host, "login.microsoftonline.us");
        assert_eq!(gov.graph_host, "graph.microsoft.us");
        assert!(gov.agent_hosts.contains(&"*.servicebus.usgovcloudapi.net"));
        let cn = Environment::AzureChinaCloud.endpoints();
        assert_eq!(cn.login_host, "login.chinacloudapi.cn");
        assert_eq!(cn.graph_host, "microsoftgraph.chinacloudapi.cn");
        let public = Environment::AzureCloud.endpoints();
        assert_eq!(public.graph_host, "graph.microsoft.com");
        assert!(public.agent_hosts.contains(&"*.msappproxy.net"));
    }
}
