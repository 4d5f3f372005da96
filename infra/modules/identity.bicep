// User-assigned managed identity for WaveGuard.
//
// One identity does everything the Function App needs: it reads the deployment package, runs
// the host's storage connection (queues, tables, blobs), sends telemetry to Application Insights,
// resolves Key Vault references and calls Microsoft Graph. A user-assigned identity (rather than
// the app's system-assigned one) exists before the app does, so every role and Graph permission
// can be granted first and survives the app being deleted and recreated.

@description('Name of the user-assigned managed identity (3-128 letters, digits, hyphens and underscores).')
@minLength(3)
@maxLength(128)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id of the identity (for identity.userAssignedIdentities and keyVaultReferenceIdentity).')
output id string = identity.id

@description('Name of the identity.')
output name string = identity.name

@description('Object id of the identity\'s service principal (role assignments, Graph app role assignments).')
output principalId string = identity.properties.principalId

@description('Client (application) id of the identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
output clientId string = identity.properties.clientId
