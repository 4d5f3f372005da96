// Flex Consumption plan (FC1) and the WaveGuard Function App (Linux, Python 3.13).
//
// Everything authenticates with the user-assigned identity: the deployment package
// (functionAppConfig.deployment.storage), the host storage connection (AzureWebJobsStorage__*),
// Application Insights (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), Key Vault references
// (keyVaultReferenceIdentity) and Microsoft Graph (AZURE_CLIENT_ID for azure-identity).
// Flex Consumption sets the runtime in functionAppConfig.runtime, so FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE and WEBSITE_CONTENT* must not be set.

@description('Name of the Flex Consumption plan (1-60 letters, digits and hyphens).')
@minLength(1)
@maxLength(60)
param planName string

@description('Name of the Function App (2-60 letters, digits and hyphens; globally unique: it is the <name>.azurewebsites.net host).')
@minLength(2)
@maxLength(60)
param appName string

@description('Azure region (must offer Flex Consumption: az functionapp list-flexconsumption-locations).')
param location string

@description('Tags applied to the plan and the app.')
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string

@description('Blob service endpoint of the storage account.')
param blobEndpoint string

@description('Queue service endpoint of the storage account.')
param queueEndpoint string

@description('Table service endpoint of the storage account.')
param tableEndpoint string

@description('Name of the Application Insights component (same resource group).')
param appInsightsName string

@description('Name of the Key Vault that holds the secrets referenced by keyVaultAppSettings.')
param keyVaultName string

@description('App settings resolved from Key Vault: { APP_SETTING_NAME: \'secret-name\' }.')
param keyVaultAppSettings object = {}

@description('Plain (non-secret) app settings: { NAME: \'value\' }. Values must be strings.')
param appSettings object = {}

@description('Python version (Flex Consumption runtime.version).')
param pythonVersion string = '3.13'

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances Flex Consumption may scale out to (bounds Graph write pressure and cost).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Public base URL Graph sends change notifications to (WAVEGUARD_NOTIFICATION_URL). Empty: https://<default host name>.')
param notificationBaseUrl string = ''

@description('Always-ready instances for the HTTP trigger group (0 = scale to zero; 1 keeps Graph notifications inside their 3 s budget after idle periods).')
@minValue(0)
param httpAlwaysReadyInstances int = 1

func trimSlash(url string) string => endsWith(url, '/') ? substring(url, 0, length(url) - 1) : url

// Identity-based host storage. The service URIs (rather than __accountName) also cover the
// table service, which WaveGuard uses for its state and which __accountName does not describe.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: trimSlash(blobEndpoint)
  AzureWebJobsStorage__queueServiceUri: trimSlash(queueEndpoint)
  AzureWebJobsStorage__tableServiceUri: trimSlash(tableEndpoint)
}

var platformSettings = {
  // azure-identity's ManagedIdentityCredential / DefaultAzureCredential pick the identity from it.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // host.json telemetryMode OpenTelemetry: the Python worker makes the host's span current for each
  // invocation, so WaveGuard's spans join the host's trace. WaveGuard configures the Azure Monitor
  // distro itself (with its managed identity), so PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY stays off.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

// Key Vault references; versionless, so a rotated secret is picked up (within 24 h, or at once
// with a config-reference refresh / app restart).
var keyVaultReferences = toObject(items(keyVaultAppSettings), entry => entry.key, entry => '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${entry.value})')

// HTTP triggers (HR webhooks, Graph notifications, Azure Monitor alerts) form the 'http' group.
var httpAlwaysReady = [
  {
    name: 'http'
    instanceCount: httpAlwaysReadyInstances
  }
]

// azd finds the app to deploy to by this tag (see azure.yaml).
var appTags = union(tags, {
  'azd-service-name': 'waveguard'
})

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: appTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: httpAlwaysReadyInstances > 0 ? httpAlwaysReady : []
      }
    }
  }

  // Replaces the whole app-settings collection on every deployment: the template is the source
  // of truth (set extra settings through the appSettings parameter, not the portal).
  resource settings 'config' = {
    name: 'appsettings'
    properties: union(appSettings, keyVaultReferences, platformSettings, hostStorageSettings, {
      WAVEGUARD_NOTIFICATION_URL: empty(notificationBaseUrl) ? 'https://${app.properties.defaultHostName}' : notificationBaseUrl
    })
  }
}

@description('Name of the Function App.')
output name string = app.name

@description('Resource id of the Function App.')
output id string = app.id

@description('Default host name, e.g. <name>.azurewebsites.net')
output defaultHostName string = app.properties.defaultHostName
