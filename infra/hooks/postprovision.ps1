# azd postprovision hook (PowerShell 7; postprovision.sh is the POSIX twin and does the same).
#
# Grants WaveGuard's managed identity the Microsoft Graph application permissions this
# environment needs. Which ones: WAVEGUARD_GRAPH_PERMISSIONS, an output of infra/main.bicep that
# main.bicep selected from infra/graph-permissions.json; their app role ids: the same file.
#
# It grants them with the Azure CLI (az rest, POST /servicePrincipals/{id}/appRoleAssignments)
# when the account az is signed in with may: Privileged Role Administrator, Global Administrator,
# or a principal holding AppRoleAssignment.ReadWrite.All. Otherwise it prints the exact commands
# for an administrator and still exits 0: the infrastructure is complete, and WaveGuard's Graph
# calls answer 403 until the permissions are granted.
#
#   azd env set WAVEGUARD_GRAPH_GRANT print   never try; only print the commands
#
# azd hands the hook every value of the environment (.azure/<env>/.env), Bicep outputs included.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$GraphAppId = '00000003-0000-0000-c000-000000000000'
$Graph = 'https://graph.microsoft.com/v1.0'
$Catalog = Join-Path $PSScriptRoot '..' 'graph-permissions.json'

$mi = $env:WAVEGUARD_IDENTITY_PRINCIPAL_ID
$wanted = @("$env:WAVEGUARD_GRAPH_PERMISSIONS" -split '\s+' | Where-Object { $_ })
if (-not $mi -or $wanted.Count -eq 0) {
    [Console]::Error.WriteLine('postprovision: WAVEGUARD_IDENTITY_PRINCIPAL_ID or WAVEGUARD_GRAPH_PERMISSIONS is not set;')
    [Console]::Error.WriteLine('run this hook through azd (azd provision / azd up), which passes the deployment''s outputs.')
    exit 1
}
# An object id is a GUID: anything else is refused before it reaches a command.
if ($mi -notmatch '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$') {
    [Console]::Error.WriteLine('postprovision: WAVEGUARD_IDENTITY_PRINCIPAL_ID is not a GUID; refusing to use it.')
    exit 1
}

if ("$env:WAVEGUARD_GRAPH_GRANTED_BY_DEPLOYMENT" -eq 'true') {   # -eq on strings ignores case
    Write-Host 'Graph permissions: granted by the deployment itself (grantGraphPermissions=true).'
    exit 0
}

# name -> appRoleId from graph-permissions.json, in the order of WAVEGUARD_GRAPH_PERMISSIONS.
$byName = @{}
foreach ($entry in (Get-Content -Raw -Path $Catalog | ConvertFrom-Json)) {
    $byName[$entry.permission] = $entry.appRoleId
}
# From here on every failure is checked by hand ($LASTEXITCODE), native stderr included.
$ErrorActionPreference = 'Continue'

$pairs = [System.Collections.Generic.List[object]]::new()
foreach ($name in $wanted) {
    if (-not $byName.ContainsKey($name)) {
        [Console]::Error.WriteLine("postprovision: $name is not in infra/graph-permissions.json (main.bicep and the file disagree).")
        exit 1
    }
    $pairs.Add([pscustomobject]@{ Name = $name; Id = $byName[$name] })
}

$tenant = if ($env:AZURE_TENANT_ID) { $env:AZURE_TENANT_ID } else { '<tenant id>' }

function Show-AdminCommands($todo) {
    Write-Host ''
    Write-Host "WaveGuard's managed identity still needs these Microsoft Graph application permissions:"
    Write-Host ''
    foreach ($p in $todo) { Write-Host ('  {0,-40} app role id {1}' -f $p.Name, $p.Id) }
    Write-Host ''
    Write-Host 'A Privileged Role Administrator (or Global Administrator) grants them with the Azure CLI,'
    Write-Host "signed in to tenant $tenant (az login --tenant $tenant), in PowerShell:"
    Write-Host ''
    Write-Host "  `$GRAPH_SP = az ad sp show --id $GraphAppId --query id -o tsv"
    foreach ($p in $todo) {
        # The body goes through a file: PowerShell mangles double quotes passed to az.cmd.
        Write-Host ("  Set-Content body.json ('{{""principalId"":""{0}"",""resourceId"":""' + `$GRAPH_SP + '"",""appRoleId"":""{1}""}}'); az rest --method post --url $Graph/servicePrincipals/{0}/appRoleAssignments --headers Content-Type=application/json --body '@body.json'   # {2}" -f $mi, $p.Id, $p.Name)
    }
    Write-Host ''
    Write-Host "Nothing needs redeploying: WaveGuard's next Graph tokens carry the permissions (managed"
    Write-Host "identity tokens are cached for up to 24 hours). 'azd hooks run postprovision' checks them again;"
    Write-Host "infra/README.md, 'When you are not an administrator', says more."
}

$bodyFile = $null

function Stop-Granting([string]$reason, $todo) {
    Write-Host "WARNING: Graph permissions not granted: $reason"
    Show-AdminCommands $todo
    if ($bodyFile) { Remove-Item -Path $bodyFile -ErrorAction SilentlyContinue }
    exit 0
}

if ("$env:WAVEGUARD_GRAPH_GRANT" -eq 'print') { Stop-Granting 'WAVEGUARD_GRAPH_GRANT=print.' $pairs }
if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Stop-Granting 'the Azure CLI (az) is not installed.' $pairs }

$azTenant = az account show --query tenantId -o tsv 2>$null
if ($LASTEXITCODE -ne 0 -or -not $azTenant) {
    Stop-Granting "az is not signed in ('azd auth login' does not sign in az; run 'az login')." $pairs
}
if ($env:AZURE_TENANT_ID -and $azTenant -ne $env:AZURE_TENANT_ID) {
    Stop-Granting "az is signed in to tenant $azTenant, azd deployed to $($env:AZURE_TENANT_ID)." $pairs
}
$graphSp = az ad sp show --id $GraphAppId --query id -o tsv 2>$null
if ($LASTEXITCODE -ne 0 -or -not $graphSp) { Stop-Granting 'could not read the Microsoft Graph service principal.' $pairs }

# The ids in graph-permissions.json must be the tenant's own Graph app roles of those names: a
# wrong id would grant another permission, so a mismatch stops the hook before any grant.
$roles = az ad sp show --id $GraphAppId --query 'appRoles[].{value:value,id:id}' -o json 2>$null
if ($LASTEXITCODE -ne 0 -or -not $roles) { Stop-Granting "could not read Microsoft Graph's app roles." $pairs }
$roleIds = @{}
foreach ($role in ($roles | Out-String | ConvertFrom-Json)) { $roleIds[$role.value] = $role.id }
foreach ($pair in $pairs) {
    if ($roleIds[$pair.Name] -ne $pair.Id) {
        [Console]::Error.WriteLine("postprovision: infra/graph-permissions.json gives $($pair.Name) the app role id $($pair.Id), but Microsoft Graph's is '$($roleIds[$pair.Name])'; fix the file. Nothing was granted.")
        exit 1
    }
}

# A new managed identity can take a minute to appear in Microsoft Graph: retry while it is missing.
$existing = $null
foreach ($attempt in 1..6) {
    $existing = az rest --method get --url "$Graph/servicePrincipals/$mi/appRoleAssignments?`$top=999" `
        --query "value[?resourceId=='$graphSp'].appRoleId" -o tsv 2>$null
    if ($LASTEXITCODE -eq 0) { break }
    if ($attempt -eq 6) { Stop-Granting "could not read the identity's current app role assignments." $pairs }
    Start-Sleep -Seconds 10
}
$have = @("$existing" -split '\s+' | Where-Object { $_ })

$remaining = [System.Collections.Generic.List[object]]::new()
foreach ($p in $pairs) {
    if ($have -contains $p.Id) { Write-Host "Graph permission $($p.Name): already granted" } else { $remaining.Add($p) }
}

$bodyFile = New-TemporaryFile
foreach ($p in @($remaining)) {
    # The body goes through a file: PowerShell mangles double quotes passed to az.cmd on Windows.
    @{ principalId = $mi; resourceId = $graphSp; appRoleId = $p.Id } | ConvertTo-Json -Compress |
        Set-Content -Path $bodyFile -NoNewline
    $out = az rest --method post --url "$Graph/servicePrincipals/$mi/appRoleAssignments" `
        --headers Content-Type=application/json --body "@$bodyFile" 2>&1 | Out-String
    if ($LASTEXITCODE -eq 0) {
        Write-Host "Graph permission $($p.Name): granted"
    } elseif ($out -match 'already exists') {
        Write-Host "Graph permission $($p.Name): already granted"
    } elseif ($out -match 'Authorization_RequestDenied|Insufficient privileges|Forbidden') {
        Stop-Granting 'the signed-in account may not grant Microsoft Graph application permissions.' $remaining
    } else {
        [Console]::Error.WriteLine($out)
        Stop-Granting "granting $($p.Name) failed." $remaining
    }
    [void]$remaining.Remove($p)
}
Remove-Item -Path $bodyFile -ErrorAction SilentlyContinue
Write-Host "Graph permissions: all $($pairs.Count) in place."
