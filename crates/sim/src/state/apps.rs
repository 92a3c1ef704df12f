//! App registrations beyond the tenant's own: those a fixture lists (someone made them before
//! the simulator started), who may register more, and finding one by object id or client id.

use chrono::{DateTime, Utc};

use super::{
    scope_id, stable_guid, Application, Credential, Registering, ServicePrincipal, User, World,
    KNOWN_SCOPES,
};
use crate::tenant::{CredentialFixture, Fixture, FixtureError};

/// The audiences Graph knows for `signInAudience`.
pub const SIGN_IN_AUDIENCES: [&str; 4] = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

impl World {
    /// How `user` may register an application: an admin role first (Microsoft: `create` takes
    /// precedence over `createAsOwner`), then the Application Developer role or the tenant's
    /// "Users can register applications"; `None` when neither allows it.
    pub fn registering(&self, user: &User) -> Option<Registering> {
        if user.manages_apps() {
            Some(Registering::AsAdmin)
        } else if self.tenant.users_can_register_apps
            || user
                .directory_roles
                .iter()
                .any(|r| r == "Application Developer")
        {
            Some(Registering::AsOwner)
        } else {
            None
        }
    }

    /// The application whose object id is `id`.
    pub fn application(&self, id: &str) -> Option<&Application> {
        self.applications
            .iter()
            .find(|a| a.id.eq_ignore_ascii_case(id))
    }

    /// The application whose client id is `app_id`.
    pub fn application_by_app_id(&self, app_id: &str) -> Option<&Application> {
        self.applications
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
    }

    pub(super) fn load_applications(
        &mut self,
        fixture: &Fixture,
        now: DateTime<Utc>,
    ) -> Result<(), FixtureError> {
        let invalid = |message: String| FixtureError::Invalid {
            path: fixture.tenant.domain.clone(),
            message,
        };
        // Registered before the simulator started: replicated, and a day old.
        let made = now - chrono::Duration::days(1);
        for app in &fixture.applications {
            let what = format!("application {:?} ({})", app.name, app.app_id);
            let app_id = uuid::Uuid::parse_str(&app.app_id)
                .map_err(|_| invalid(format!("{what}: app_id is not a GUID")))?
                .to_string();
            if self.application_by_app_id(&app_id).is_some() {
                return Err(invalid(format!(
                    "{what}: another application has its app_id"
                )));
            }
            if !SIGN_IN_AUDIENCES.contains(&app.sign_in_audience.as_str()) {
                return Err(invalid(format!(
                    "{what}: sign_in_audience is none of {}",
                    SIGN_IN_AUDIENCES.join(", ")
                )));
            }
            let owners = app
                .owners
                .iter()
                .map(|o| {
                    self.user(o)
                        .map(|u| u.oid.clone())
                        .ok_or_else(|| invalid(format!("{what}: owner {o} is no user")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for uri in app
                .public_client_redirect_uris
                .iter()
                .chain(&app.web_redirect_uris)
                .chain(&app.spa_redirect_uris)
            {
                if url::Url::parse(uri).is_err() {
                    return Err(invalid(format!(
                        "{what}: redirect URI {uri:?} is not a URL"
                    )));
                }
            }
            let mut required_resource_access: Vec<(String, Vec<(String, String)>)> = Vec::new();
            for name in &app.permissions {
                let (resource, id) = KNOWN_SCOPES
                    .iter()
                    .find(|(_, value, _)| value.eq_ignore_ascii_case(name))
                    .and_then(|(resource, value, _)| {
                        scope_id(resource, value).map(|id| (*resource, id))
                    })
                    .ok_or_else(|| {
                        invalid(format!(
                            "{what}: permission {name} is not one the simulator knows"
                        ))
                    })?;
                let entry = match required_resource_access
                    .iter_mut()
                    .find(|(r, _)| r == resource)
                {
                    Some(entry) => entry,
                    None => {
                        required_resource_access.push((resource.to_string(), Vec::new()));
                        required_resource_access.last_mut().expect("just pushed")
                    }
                };
                entry.1.push((id.to_string(), "Scope".to_string()));
            }
            let credentials = |list: &[CredentialFixture], kind: &str| {
                list.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let end = DateTime::parse_from_rfc3339(&c.expires)
                            .map_err(|_| {
                                invalid(format!(
                                    "{what}: {kind} {:?} expires is not RFC 3339",
                                    c.display_name
                                ))
                            })?
                            .with_timezone(&Utc);
                        let key_id = stable_guid(&format!("{kind}:{app_id}:{i}"));
                        let hint = match kind {
                            // A secret's first three characters.
                            "secret" => key_id.chars().take(3).collect(),
                            // A certificate's SHA-1 thumbprint, as hex.
                            _ => stable_guid(&format!("thumbprint:{key_id}"))
                                .replace('-', "")
                                .to_ascii_uppercase()
                                .chars()
                                .take(40)
                                .collect(),
                        };
                        Ok(Credential {
                            key_id,
                            display_name: c.display_name.clone(),
                            hint,
                            start: made,
                            end,
                        })
                    })
                    .collect::<Result<Vec<_>, FixtureError>>()
            };
            let application = Application {
                id: stable_guid(&format!("application:{app_id}")),
                app_id: app_id.clone(),
                display_name: app.name.clone(),
                sign_in_audience: app.sign_in_audience.clone(),
                redirect_uris: app.public_client_redirect_uris.clone(),
                web_redirect_uris: app.web_redirect_uris.clone(),
                spa_redirect_uris: app.spa_redirect_uris.clone(),
                fallback_public_client: app.fallback_public_client,
                required_resource_access,
                owners,
                password_credentials: credentials(&app.secrets, "secret")?,
                key_credentials: credentials(&app.certificates, "certificate")?,
                created: made,
                built_in: false,
            };
            if app.service_principal {
                self.service_principals.push(ServicePrincipal {
                    id: stable_guid(&format!("servicePrincipal:{app_id}")),
                    app_id: app_id.clone(),
                    display_name: app.name.clone(),
                    created: made,
                });
            }
            self.applications.push(application);
        }
        Ok(())
    }
}
