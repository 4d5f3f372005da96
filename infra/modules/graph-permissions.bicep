// Microsoft Graph application permissions for WaveGuard's managed identity.
//
// Each entry becomes an app role assignment on the tenant's Microsoft Graph service principal
// (appId 00000003-0000-0000-c000-000000000000) with the identity as principal. Creating the
// assignment IS the admin consent for a managed identity: there is no consent prompt to click.
// docs/permissions.md explains every permission.
//
// Deploying this module needs a privileged deployer: Privileged Role Administrator (or Global
// Administrator), or an app/user holding AppRoleAssignment.ReadWrite.All + Application.Read.All
// for the Microsoft Graph Bicep extension. Set grantGraphPermissions=false in main.bicep to skip it
// and let an identity administrator grant the same list (infra/README.md shows how).

extension microsoftGraphV1

@description('Object id of the managed identity\'s service principal that receives the app roles.')
param principalId string

@description('Microsoft Graph application permission names (app role values), e.g. \'User.Read.All\'.')
param appRoles string[]

// Well-known appId of Microsoft Graph (same in every tenant).
var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

// The app role id is looked up by its value in the tenant's Graph service principal, so a
// misspelt permission fails the deployment instead of granting something else.
resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for role in appRoles: {
  principalId: principalId
  resourceId: microsoftGraph.id
  appRoleId: (filter(microsoftGraph.appRoles, r => r.value == role)[0]).id
}]

@description('The Microsoft Graph application permissions granted.')
output granted string[] = appRoles
