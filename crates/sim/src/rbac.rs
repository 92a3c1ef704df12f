//! Azure RBAC as ARM evaluates it: scopes contain their descendants, and role actions are
//! case-insensitive patterns in which `*` matches any run of characters, slashes included.
//! So `*/read` matches every read, and `Microsoft.Network/networkInterfaces/*/read` matches
//! `Microsoft.Network/networkInterfaces/ipConfigurations/read` but not the NIC's own
//! `Microsoft.Network/networkInterfaces/read`: the `*` stands for at least the text between
//! two slashes, so a role that means to read the NIC names that action too.

/// Puts a scope in the canonical form used for comparison: a leading slash, no trailing
/// slash, and `/providers/Microsoft.Subscription/subscriptions/X` written as
/// `/subscriptions/X` (the official PIM examples use the former).
pub fn normalize_scope(scope: &str) -> String {
    let trimmed = scope.trim().trim_matches('/');
    let mut s = format!("/{trimmed}");
    const ALIAS: &str = "/providers/microsoft.subscription/subscriptions/";
    if s.to_ascii_lowercase().starts_with(ALIAS) {
        s = format!("/subscriptions/{}", &s[ALIAS.len()..]);
    }
    s
}

/// Whether `outer` is `inner` or one of its ancestors by path. `/` contains everything.
/// Management groups are not paths above their subscriptions: `World::scope_contains` knows
/// the hierarchy, and decides access.
pub fn scope_contains(outer: &str, inner: &str) -> bool {
    let outer = normalize_scope(outer).to_ascii_lowercase();
    let inner = normalize_scope(inner).to_ascii_lowercase();
    outer == "/" || inner == outer || inner.starts_with(&format!("{outer}/"))
}

/// Whether an action pattern from a role definition grants `action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    glob(pattern.as_bytes(), action.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last star: linear in practice,
    // and no recursion for hostile patterns to blow up.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Whether a role with these actions and not-actions grants `action`.
pub fn role_grants(actions: &[String], not_actions: &[String], action: &str) -> bool {
    actions.iter().any(|a| action_matches(a, action))
        && !not_actions.iter().any(|n| action_matches(n, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_azure() {
        let table = [
            ("*", "Microsoft.Compute/virtualMachines/read", true),
            ("*/read", "Microsoft.Compute/virtualMachines/read", true),
            (
                "*/read",
                "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
                false,
            ),
            // A wildcard segment is not also the segment's absence.
            (
                "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
                "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
                false,
            ),
            (
                "Microsoft.Network/networkInterfaces/*/read",
                "Microsoft.Network/networkInterfaces/read",
                false,
            ),
            (
                "Microsoft.Network/networkInterfaces/*/read",
                "Microsoft.Network/networkInterfaces/write",
                false,
            ),
            (
                "Microsoft.Network/networkInterfaces/*/read",
                "Microsoft.Network/read",
                false,
            ),
            (
                "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
                "microsoft.security/locations/jitnetworkaccesspolicies/requests/read",
                true,
            ),
            (
                "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
                "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
                true,
            ),
            (
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/roleDefinitions/write",
                true,
            ),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ];
        for (pattern, action, want) in table {
            assert_eq!(
                action_matches(pattern, action),
                want,
                "{pattern} vs {action}"
            );
        }
    }

    #[test]
    fn scopes_contain_descendants_only() {
        assert!(scope_contains(
            "/subscriptions/S",
            "/subscriptions/s/resourceGroups/rg"
        ));
        assert!(scope_contains("/", "/subscriptions/S"));
        assert!(!scope_contains(
            "/subscriptions/S/resourceGroups/rg",
            "/subscriptions/S"
        ));
        assert!(!scope_contains("/subscriptions/S", "/subscriptions/S2"));
        assert!(scope_contains(
            "providers/Microsoft.Subscription/subscriptions/S",
            "/subscriptions/S/resourceGroups/rg/"
        ));
    }

    #[test]
    fn not_actions_subtract() {
        let actions = vec!["*".to_string()];
        let not = vec!["Microsoft.Authorization/*/Write".to_string()];
        assert!(role_grants(
            &actions,
            &not,
            "Microsoft.Compute/virtualMachines/write"
        ));
        assert!(!role_grants(
            &actions,
            &not,
            "Microsoft.Authorization/roleAssignments/write"
        ));
    }
}
