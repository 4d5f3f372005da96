// Storage account for WaveGuard: the Functions host storage (AzureWebJobsStorage), WaveGuard's
// queues and tables, and the blob container Flex Consumption deploys the app package to.
//
// Shared key access is disabled. That works on Flex Consumption because every consumer uses
// Entra ID: the host (AzureWebJobsStorage__* identity-based settings), the deployment package
// (functionAppConfig.deployment.storage with UserAssignedIdentity), WaveGuard's own
// azure-storage-queue / azure-data-tables clients (ManagedIdentityCredential), and operators
// (az ... --auth-mode login). Nothing ever needs an account key or SAS.

@description('Name of the storage account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Object id of the Function App\'s managed identity (blob owner, queue and table contributor, reader).')
param appPrincipalId string

@description('Optional object id of an operator (user or group) who runs the waveguard CLI (doctor, poison, alerts, waves, silence). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// Queue and table names are a contract with the code (shared/names.py);
// tests/unit/test_infra_matches_code.py keeps them equal.
var queueNames = [
  'hr-events'
  'group-changes'
  'risk-events'
  'alerts'
  'wave-work'
]
var tableNames = [
  'wgidempotency'
  'wgstate'
  'wgaudit'
]

// Built-in roles.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
}

// The Functions host needs Blob Data Owner on its storage account (leases, secrets, timers,
// the deployment package) and the queue role (triggers); WaveGuard sends to and creates queues
// and reads, writes and creates its state tables. The storage health probe (/api/health,
// waveguard doctor) reads the queue service properties, which Azure authorizes with
// Microsoft.Storage/storageAccounts/queueServices/read: a control-plane action none of the data
// roles has, hence Reader on this account (account settings only: no keys, no data).
var appRoleIds = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
  roles.reader
]

// The waveguard CLI: `poison replay` and `alerts resolve` send to (and if need be create) queues;
// every command reads and writes the state tables (alerts, silences, audit, poison archive,
// waves approve/rollback); `doctor` runs the storage health probe (Reader, as above).
var operatorRoles = [
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
  roles.reader
]
var operatorRoleIds = empty(operatorPrincipalId) ? [] : operatorRoles

// The host creates <queue>-poison itself on first failure; creating them here keeps the set
// visible, monitorable and replayable from day one.
var allQueueNames = flatten(map(queueNames, q => [q, '${q}-poison']))

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobService 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: true
        days: 7
      }
      containerDeleteRetentionPolicy: {
        enabled: true
        days: 7
      }
    }

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: {
        publicAccess: 'None'
      }
    }
  }

  resource queueService 'queueServices' = {
    name: 'default'

    resource queues 'queues' = [for q in allQueueNames: {
      name: q
    }]
  }

  resource tableService 'tableServices' = {
    name: 'default'

    resource tables 'tables' = [for t in tableNames: {
      name: t
    }]
  }
}

resource appRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appRoleIds: {
  name: guid(storage.id, appPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'WaveGuard Function App (managed identity).'
  }
}]

resource operatorRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in operatorRoleIds: {
  name: guid(storage.id, operatorPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    description: 'WaveGuard operator (waveguard CLI).'
  }
}]

@description('Name of the storage account.')
output name string = storage.name

@description('Resource id of the storage account.')
output id string = storage.id

@description('Blob endpoint, e.g. https://<account>.blob.core.windows.net/')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Queue endpoint, e.g. https://<account>.queue.core.windows.net/')
output queueEndpoint string = storage.properties.primaryEndpoints.queue

@description('Table endpoint, e.g. https://<account>.table.core.windows.net/')
output tableEndpoint string = storage.properties.primaryEndpoints.table

@description('URL of the Flex Consumption deployment container.')
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'

@description('Every queue created (work queues and their poison twins).')
output queues string[] = allQueueNames
