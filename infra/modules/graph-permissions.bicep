// Microsoft Graph application permissions for WaveGuard's managed identity.
//
// Each entry becomes an app role assignment on the tenant's Microsoft Graph service principal
// (appId 00000003-0000-0000-c000-000000000000) with the identity as principal. Creating the
// assignment IS the admin consent for a managed identity: there is no consent prompt to click.
// The entries come from infra/graph-permissions.json, selected by main.bicep; docs/permissions.md
// explains every permission.
//
// Only deployed with grantGraphPermissions=true (main.bicep), which needs a privileged deployer:
// Privileged Role Administrator (or Global Administrator), or an app/user holding
// AppRoleAssignment.ReadWrite.All + Application.Read.All for the Microsoft Graph Bicep extension.
// By default the azd postprovision hook (infra/hooks/) grants the same list instead, or prints
// the commands for an administrator.

extension microsoftGraphV1

@description('Object id of the managed identity\'s service principal that receives the app roles.')
param principalId string

@description('Entries of infra/graph-permissions.json to grant: { permission, appRoleId, ... }.')
param permissions array

// Well-known appId of Microsoft Graph (same in every tenant).
var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

// The app role id is looked up by the permission's name in the tenant's Graph service principal,
// so a misspelt name fails the deployment instead of granting something else (the hooks check
// graph-permissions.json's recorded ids against the same list before they grant).
resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for p in permissions: {
  principalId: principalId
  resourceId: microsoftGraph.id
  appRoleId: (filter(microsoftGraph.appRoles, r => r.value == p.permission)[0]).id
}]

@description('The Microsoft Graph application permissions granted.')
output granted string[] = [for p in permissions: p.permission]
