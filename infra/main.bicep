// WaveGuard on Azure: Flex Consumption Function App + Storage (queues, tables) + App Insights +
// Key Vault + a user-assigned managed identity, and (optionally) the identity's Microsoft Graph
// application permissions.
//
// Deploy into an existing resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.json
// See infra/README.md. Validated by review only; run `az bicep build --file infra/main.bicep`
// before the first deployment.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Short prefix for every resource name (lowercase letters, digits, single hyphens). A uniqueString of the subscription, resource group and baseName is appended.')
@minLength(3)
@maxLength(12)
param baseName string

@description('Azure region for every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Tags applied to every resource.')
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

@description('Grant the Graph application permissions to the managed identity in this deployment. Needs a Privileged Role Administrator (or equivalent) deployer; set false and grant them separately otherwise.')
param grantGraphPermissions bool = true

@description('Let WaveGuard create and update Conditional Access policies (Policy.ReadWrite.ConditionalAccess + Application.Read.All). False: read-only CA (Policy.Read.All); an administrator applies the baseline and wave promotions by hand.')
param manageConditionalAccess bool = true

@description('Grant Mail.Send and Mail.ReadWrite for the e-mail receiver and TAP delivery by e-mail (saved as a draft, then sent). Restrict it to the sender mailbox in Exchange Online (docs/permissions.md).')
param grantMailSend bool = true

@description('Grant the permissions for destructive risk responses (confirm compromised, revoke sessions, disable account). WaveGuard still keeps them off or dry-run unless its configuration enables them.')
param enableDestructiveResponses bool = false

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

@description('Optional object id of the operator user or group: Storage Queue/Table Data Contributor (waveguard CLI, replay) and Key Vault Secrets Officer (set secrets). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
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

var token = uniqueString(subscription().id, resourceGroup().id, baseName)
var compactBase = toLower(replace(baseName, '-', ''))

var names = {
  identity: 'id-${baseName}-${token}'
  logAnalytics: 'log-${baseName}-${token}'
  appInsights: 'appi-${baseName}-${token}'
  storage: take('st${compactBase}${token}', 24)
  keyVault: take('kv-${baseName}-${token}', 24)
  plan: 'plan-${baseName}-${token}'
  functionApp: 'func-${baseName}-${token}'
}

// Queue and table names are a contract with the code (shared/names.py).
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
var deploymentContainerName = 'app-package'

// Graph application permissions; docs/permissions.md gives the reason for each.
var graphRolesCore = [
  'User.Read.All' // resolve hires, managers, department/country selectors
  'GroupMember.ReadWrite.All' // wave group membership (add/remove, delta)
  'Group.Read.All' // change-notification subscriptions on groups
  'Group.Create' // wave groups: create; as their owner, rename and delete them
  tapPermission // Temporary Access Pass for new hires
  'UserAuthenticationMethod.Read.All' // a hire's registered methods: no TAP for an account that has any
  'Policy.Read.All' // read CA policies, named locations, auth-method policy
  'AuditLog.Read.All' // sign-in logs, userRegistrationDetails (gates, break-glass watch)
  'IdentityRiskEvent.Read.All' // identityProtection/riskDetections
]
var graphRolesConditionalAccessWrite = [
  'Policy.ReadWrite.ConditionalAccess' // create/update CA policies (report-only first)
  'Application.Read.All' // required alongside it by the CA write APIs
]
var graphRolesMail = [
  'Mail.Send' // e-mail receiver, TAP delivery to managers
  'Mail.ReadWrite' // the TAP e-mail saved as a draft and read back: exactly one per hire
]
var graphRolesRiskReadOnly = [
  'IdentityRiskyUser.Read.All' // identityProtection/riskyUsers
]
var graphRolesRiskResponses = [
  'IdentityRiskyUser.ReadWrite.All' // riskyUsers + confirmCompromised / dismiss
  'User.RevokeSessions.All' // revokeSignInSessions
]
var graphRolesConditionalAccess = manageConditionalAccess ? graphRolesConditionalAccessWrite : []
var graphRolesMailIfGranted = grantMailSend ? graphRolesMail : []
var graphRolesRisk = enableDestructiveResponses ? graphRolesRiskResponses : graphRolesRiskReadOnly
var graphAppRoles = concat(graphRolesCore, graphRolesConditionalAccess, graphRolesMailIfGranted, graphRolesRisk)

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
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'waveguard-monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'waveguard-storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    tableNames: tableNames
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
    tags: tags
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
    tags: tags
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

module graphPermissions 'modules/graph-permissions.bicep' = if (grantGraphPermissions) {
  name: 'waveguard-graph-permissions'
  params: {
    principalId: identity.outputs.principalId
    appRoles: graphAppRoles
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

@description('Name of the Function App.')
output functionAppName string = functionApp.outputs.name

@description('Default host name of the Function App (HTTP triggers are under https://<host>/api/...).')
output functionAppDefaultHostName string = functionApp.outputs.defaultHostName

@description('Object id of the managed identity\'s service principal.')
output identityPrincipalId string = identity.outputs.principalId

@description('Client id of the managed identity (AZURE_CLIENT_ID).')
output identityClientId string = identity.outputs.clientId

@description('Name of the storage account.')
output storageAccountName string = storage.outputs.name

@description('Name of the Key Vault.')
output keyVaultName string = keyVault.outputs.name

@description('Name of the Application Insights component.')
output appInsightsName string = monitoring.outputs.appInsightsName

@description('Graph application permissions this deployment granted (empty when grantGraphPermissions is false).')
output graphPermissionsGranted array = grantGraphPermissions ? graphAppRoles : []

@description('Graph application permissions WaveGuard needs with these parameters (grant them by hand when grantGraphPermissions is false).')
output graphPermissionsRequired array = graphAppRoles
