# Builds the Windows installer: PyInstaller onedir, frozen self-check, Inno Setup.
#   powershell -ExecutionPolicy Bypass -File installer\windows\build.ps1
# Needs Python 3.11+ and Inno Setup 6 (iscc on PATH, or choco install innosetup).
# Optional signing: $env:WINDOWS_SIGN_PFX (path) and $env:WINDOWS_SIGN_PASSWORD.
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
python -m venv .venv-build
.\.venv-build\Scripts\python -m pip install --upgrade pip
.\.venv-build\Scripts\python -m pip install . pyinstaller
.\.venv-build\Scripts\python packaging\make_icons.py
.\.venv-build\Scripts\pyinstaller --noconfirm --clean packaging\lancedb-sync.spec
$env:QT_QPA_PLATFORM = "offscreen"
& dist\lancedb-sync\lancedb-sync.exe self-check
if ($LASTEXITCODE -ne 0) { throw "the frozen self-check failed" }
$Version = (Select-String -Path app\__init__.py -Pattern '__version__ = "(.*)"').Matches[0].Groups[1].Value
$IsccArgs = @("/DAppVersion=$Version", "/DSourceDir=$Root\dist\lancedb-sync")
if ($env:WINDOWS_SIGN_PFX) {
    $IsccArgs += "/DSignTool"
    $IsccArgs += "/Ssigntool=signtool sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /f `"$env:WINDOWS_SIGN_PFX`" /p `"$env:WINDOWS_SIGN_PASSWORD`" `$f"
}
$Iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $Iscc @IsccArgs installer\windows\lancedb-sync.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Get-ChildItem dist\LanceDBSync-*-setup.exe
