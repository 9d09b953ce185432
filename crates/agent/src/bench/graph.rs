//! Reading the tenant back over its Graph API as an administrator: the harness's proof that the
//! tenant holds everything (counts of users, groups, contacts and of All Staff's members) and that
//! the delta round's change arrived. Enters: the tenant's `[tenant]` settings and an admin's
//! sign-in. Leaves: counts and properties as the tenant's Graph reads report them.

use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::control::tenant_client::{TenantClient, TenantConfig, TenantError};

/// Objects per Graph page (the largest `$top` the tenant, like Graph, accepts).
pub const PAGE: usize = 999;

/// An administrator's Graph reader.
pub struct GraphReader {
    client: TenantClient,
    token: Zeroizing<String>,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

impl GraphReader {
    /// Signs in as `upn` (password grant, the installer's client).
    pub async fn sign_in(
        tenant: &TenantConfig,
        upn: &str,
        password: &str,
    ) -> Result<GraphReader, TenantError> {
        let client = TenantClient::installer(tenant)?;
        let token = client.admin_token(upn, password).await?;
        Ok(GraphReader { client, token })
    }

    /// GET `path` (below the base URL, query included) as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, TenantError> {
        let url = self.client.url(path);
        self.get_url(&url).await
    }

    async fn get_url<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, TenantError> {
        let request = self.client.http().get(url).bearer_auth(self.token.as_str());
        self.client.send_json(request, url).await
    }

    /// Counts a collection (`/v1.0/users`, `/v1.0/groups/{id}/members`, …) page by page, selecting
    /// only `id`; `progress` gets the running count.
    pub async fn count(
        &self,
        collection: &str,
        progress: &dyn Fn(u64),
    ) -> Result<u64, TenantError> {
        let mut next = Some(
            self.client
                .url(&format!("{collection}?$select=id&$top={PAGE}")),
        );
        let mut count = 0u64;
        while let Some(url) = next {
            let page: Page = self.get_url(&url).await?;
            count += page.value.len() as u64;
            progress(count);
            next = page.next;
        }
        Ok(count)
    }

    /// The id of the group whose `displayName` is `name`, if there is exactly one.
    pub async fn group_id(&self, name: &str) -> Result<Option<String>, TenantError> {
        let filter = format!("displayName eq '{name}'").replace(' ', "%20");
        let page: Page = self
            .get_url(
                &self
                    .client
                    .url(&format!("/v1.0/groups?$filter={filter}&$select=id")),
            )
            .await?;
        Ok(match page.value.as_slice() {
            [one] => one["id"].as_str().map(str::to_owned),
            _ => None,
        })
    }
}
