// WaveGuard on Azure: Flex Consumption Function App + Storage (queues, tables) + App Insights +
// Key Vault + a user-assigned managed identity, and (optionally) the identity's Microsoft Graph
// application permissions.
//
// Deploy with the Azure Developer CLI (`azd up`: azure.yaml, main.parameters.json and the
// postprovision hook in hooks/), or into an existing resource group with the Azure CLI:
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name> ...
// See infra/README.md. `make infra-check` compiles and lints it where a Bicep CLI is installed.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Name of the environment (azd: AZURE_ENV_NAME, e.g. dev, prod, alice-test). It is part of every resource name, lower-cased and without - _ . ( ), and seeds the resource token, so two environments never collide, not even in one resource group.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Azure region for every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Extra tags for every resource; azd-env-name and app are always set.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// Function App sizing
// ---------------------------------------------------------------------------------------------

@description('Upper bound of Flex Consumption instances. It also bounds Graph write pressure: Graph allows 3,000 identity writes per 150 s per app and tenant.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for the HTTP trigger group. 1 keeps Graph change notifications (3 s budget) and validation handshakes fast after idle periods; 0 scales to zero.')
@minValue(0)
@maxValue(10)
param httpAlwaysReadyInstances int = 1

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------
// Microsoft Graph permissions (docs/permissions.md)
// ---------------------------------------------------------------------------------------------

@description('Grant the Graph application permissions to the managed identity in this deployment (the Microsoft Graph Bicep extension). Needs a Privileged Role Administrator (or equivalent) deployer. False (the default): the azd postprovision hook (hooks/) grants them when the signed-in user may, or prints the commands for an administrator.')
param grantGraphPermissions bool = false

@description('Let WaveGuard create and update Conditional Access policies (Policy.ReadWrite.ConditionalAccess + Application.Read.All). False: read-only CA (Policy.Read.All); an administrator applies the baseline and wave promotions by hand.')
param manageConditionalAccess bool = true

@description('Grant Mail.Send and Mail.ReadWrite for the e-mail receiver and TAP delivery by e-mail (saved as a draft, then sent). Restrict it to the sender mailbox in Exchange Online (docs/permissions.md).')
param grantMailSend bool = true

@description('Grant the permissions for destructive risk responses (confirm compromised, revoke sessions, disable account). WaveGuard still keeps them off or dry-run unless its configuration enables them.')
param enableDestructiveResponses bool = false

@description('Let WaveGuard move users off per-user MFA once Conditional Access covers them (waveguard permfa migrate / rollback: Policy.ReadWrite.AuthenticationMethod). False: per-user MFA is only read and reported; an administrator changes it by hand.')
param migratePerUserMfa bool = true

@description('Permission used to issue Temporary Access Passes. UserAuthMethod-TAP.ReadWrite.All is the TAP-only least-privileged choice; UserAuthenticationMethod.ReadWrite.All covers every method.')
@allowed([
  'UserAuthMethod-TAP.ReadWrite.All'
  'UserAuthenticationMethod.ReadWrite.All'
])
param tapPermission string = 'UserAuthMethod-TAP.ReadWrite.All'

// ---------------------------------------------------------------------------------------------
// WaveGuard settings (docs/azure.md)
// ---------------------------------------------------------------------------------------------

@description('WAVEGUARD_CONFIG: path of the rollout plan inside the deployed package.')
param waveguardConfig string = 'config/waveguard.yaml'

@description('GRAPH_BASE_URL: Microsoft Graph root including the version segment.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('GRAPH_TIMEOUT_SECONDS: per-request Graph timeout, at most 120 s: an invocation makes several Graph calls (and retries) within host.json functionTimeout (5 minutes).')
@minValue(1)
@maxValue(120)
param graphTimeoutSeconds int = 20

@description('WAVEGUARD_WAVE_SCHEDULE: NCRONTAB (six fields, seconds first) of the rollout timer that evaluates wave gates, re-syncs membership and nudges.')
param waveSchedule string = '0 */15 * * * *'

@description('WAVEGUARD_SUBSCRIPTION_SCHEDULE: NCRONTAB of the timer that creates and renews the Graph change-notification subscriptions on watched groups (it also runs at start).')
param subscriptionSchedule string = '0 0 */6 * * *'

@description('WAVEGUARD_GROUP_RESYNC_SCHEDULE: NCRONTAB of the daily full look at every watched group (the safety net for lost notifications).')
param groupResyncSchedule string = '0 30 2 * * *'

@description('WAVEGUARD_RISK_SCHEDULE: NCRONTAB of how often the risk timer looks; the plan\'s risk.pollEverySeconds decides how often it actually polls Identity Protection and the sign-in log.')
param riskSchedule string = '0 * * * * *'

@description('WAVEGUARD_TELEMETRY: auto exports to Application Insights (and OTLP when an endpoint is set); console prints spans; off disables export.')
@allowed([
  'auto'
  'console'
  'off'
])
param telemetry string = 'auto'

@description('WAVEGUARD_NOTIFICATION_URL: public base URL Graph delivers change notifications to. Empty: https://<function app default host name>. Set it when a gateway (Front Door, API Management) fronts the app.')
param notificationBaseUrl string = ''

@description('OTEL_EXPORTER_OTLP_ENDPOINT: optional OTLP/HTTP collector; empty leaves the setting out.')
param otlpEndpoint string = ''

@description('App settings resolved from Key Vault: { APP_SETTING_NAME: \'secret-name\' }. The secrets themselves are set after deployment (infra/README.md).')
param keyVaultAppSettings object = {
  WAVEGUARD_HR_WEBHOOK_SECRET: 'hr-webhook-secret'
  WAVEGUARD_GRAPH_CLIENT_STATE: 'graph-client-state'
  PAGERDUTY_ROUTING_KEY: 'pagerduty-routing-key'
  TEAMS_WEBHOOK_URL: 'teams-webhook-url'
}

@description('Extra plain app settings: { NAME: \'value\' } (strings). They may override the WaveGuard settings above, never the identity, storage, Application Insights or Key Vault settings.')
param extraAppSettings object = {}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

@description('Optional object id of the operator (azd: AZURE_PRINCIPAL_ID, the signed-in user): the data roles the waveguard CLI needs (Storage Queue Data Contributor, Storage Table Data Contributor, Reader on the storage account) and Key Vault Secrets Officer (set secret values). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId (azd: AZURE_PRINCIPAL_TYPE, User when unset).')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Key Vault purge protection (irreversible). Turn off only for throw-away environments.')
param keyVaultPurgeProtection bool = true

// ---------------------------------------------------------------------------------------------
// Names and fixed contracts
// ---------------------------------------------------------------------------------------------

// 13 lower-case letters and digits, stable for one environment in one resource group.
var token = uniqueString(subscription().id, resourceGroup().id, environmentName)
// The environment name as lower-case letters and digits: azd allows letters, digits and - _ . ( ).
var envCompact = toLower(replace(replace(replace(replace(replace(environmentName, '-', ''), '_', ''), '.', ''), '(', ''), ')', ''))
var envSlug = take(empty(envCompact) ? 'env' : envCompact, 16)
// Storage account and Key Vault names are at most 24 characters: 4 + 7 + 13.
var envSlugShort = take(envSlug, 7)

// Limits: identity 3-128, Log Analytics 4-63, Application Insights 1-260, plan 1-60 and Function
// App 2-60 (letters, digits, hyphens); storage 3-24 lower-case letters and digits; Key Vault 3-24
// letters, digits and hyphens, starting with a letter. Each is at most 38 or 24 characters here.
var names = {
  identity: 'id-wg-${envSlug}-${token}'
  logAnalytics: 'log-wg-${envSlug}-${token}'
  appInsights: 'appi-wg-${envSlug}-${token}'
  storage: 'stwg${envSlugShort}${token}'
  keyVault: 'kvwg${envSlugShort}${token}'
  plan: 'plan-wg-${envSlug}-${token}'
  functionApp: 'func-wg-${envSlug}-${token}'
}

// azd-env-name marks the environment's resources (infra/README.md tears down an environment that
// shares its resource group by it).
var allTags = union(tags, {
  'azd-env-name': environmentName
  app: 'waveguard'
})

var deploymentContainerName = 'app-package'

// Graph application permissions: infra/graph-permissions.json is the one list (the azd hook reads
// it too; infra/README.md describes its format). An entry applies when its parameter is null, or
// when the parameter it names has the entry's value.
var graphPermissionCatalog = loadJsonContent('graph-permissions.json')
var graphPermissions = filter(graphPermissionCatalog, p => p.parameter == null || (p.parameter == 'manageConditionalAccess' && p.value == manageConditionalAccess) || (p.parameter == 'grantMailSend' && p.value == grantMailSend) || (p.parameter == 'enableDestructiveResponses' && p.value == enableDestructiveResponses) || (p.parameter == 'migratePerUserMfa' && p.value == migratePerUserMfa) || (p.parameter == 'tapPermission' && p.value == tapPermission))
var graphPermissionNames = map(graphPermissions, p => p.permission)

var waveguardBaseSettings = {
  WAVEGUARD_ENV: 'azure'
  WAVEGUARD_CONFIG: waveguardConfig
  GRAPH_BASE_URL: graphBaseUrl
  GRAPH_TIMEOUT_SECONDS: string(graphTimeoutSeconds)
  WAVEGUARD_TELEMETRY: telemetry
  WAVEGUARD_WAVE_SCHEDULE: waveSchedule
  WAVEGUARD_SUBSCRIPTION_SCHEDULE: subscriptionSchedule
  WAVEGUARD_GROUP_RESYNC_SCHEDULE: groupResyncSchedule
  WAVEGUARD_RISK_SCHEDULE: riskSchedule
}
var otlpSettings = empty(otlpEndpoint) ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint }
var waveguardSettings = union(waveguardBaseSettings, otlpSettings, extraAppSettings)

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'waveguard-identity'
  params: {
    name: names.identity
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'waveguard-monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: allTags
    retentionInDays: logRetentionInDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'waveguard-storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    deploymentContainerName: deploymentContainerName
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'waveguard-keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

// Depends on the storage, monitoring and key vault modules through their outputs, so the
// identity's role assignments exist before the host first starts.
module functionApp 'modules/functionapp.bicep' = {
  name: 'waveguard-functionapp'
  params: {
    planName: names.plan
    appName: names.functionApp
    location: location
    tags: allTags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    keyVaultAppSettings: keyVaultAppSettings
    appSettings: waveguardSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    notificationBaseUrl: notificationBaseUrl
  }
}

module graphPermissionGrants 'modules/graph-permissions.bicep' = if (grantGraphPermissions) {
  name: 'waveguard-graph-permissions'
  params: {
    principalId: identity.outputs.principalId
    permissions: graphPermissions
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment, .azure/<env>/.env, and hands them to the hooks)
// ---------------------------------------------------------------------------------------------

@description('Name of the Function App.')
output WAVEGUARD_FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Default host name of the Function App (HTTP triggers are under https://<host>/api/...).')
output WAVEGUARD_FUNCTION_APP_HOST string = functionApp.outputs.defaultHostName

@description('Object id of the managed identity\'s service principal (Graph app role assignments).')
output WAVEGUARD_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId

@description('Client id of the managed identity (AZURE_CLIENT_ID).')
output WAVEGUARD_IDENTITY_CLIENT_ID string = identity.outputs.clientId

@description('Name of the storage account.')
output WAVEGUARD_STORAGE_ACCOUNT string = storage.outputs.name

@description('Name of the Key Vault.')
output WAVEGUARD_KEY_VAULT string = keyVault.outputs.name

@description('Name of the Application Insights component.')
output WAVEGUARD_APP_INSIGHTS string = monitoring.outputs.appInsightsName

@description('Graph application permissions WaveGuard needs with these parameters, space-separated (their app role ids are in graph-permissions.json).')
output WAVEGUARD_GRAPH_PERMISSIONS string = join(graphPermissionNames, ' ')

@description('True when this deployment granted the Graph permissions itself (grantGraphPermissions); false leaves them to the postprovision hook or an administrator.')
output WAVEGUARD_GRAPH_GRANTED_BY_DEPLOYMENT bool = grantGraphPermissions
