; Inno Setup script: a per-user installer (no administrator rights) for the PyInstaller onedir.
;   iscc /DAppVersion=0.1.0 /DSourceDir=..\..\dist\lancedb-sync installer\windows\lancedb-sync.iss
; build.ps1 runs PyInstaller and then this.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\lancedb-sync"
#endif

[Setup]
AppId={{6B0F2E4C-7A51-4C0B-9C5E-2D7F1B3A9E11}
AppName=LanceDB Sync
AppVersion={#AppVersion}
AppPublisher=LanceDB Sync developers
DefaultDirName={localappdata}\Programs\LanceDB Sync
DefaultGroupName=LanceDB Sync
DisableProgramGroupPage=yes
; Per-user: installs under %LOCALAPPDATA%, writes only HKCU, never asks for elevation.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=LanceDBSync-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SetupIconFile=..\..\resources\icons\app.ico
UninstallDisplayIcon={app}\LanceDBSync.exe
; Windows' Restart Manager closes a running instance before files are replaced or removed.
CloseApplications=yes
; Signing (optional): iscc /Ssigntool="signtool sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /f $qcert.pfx$q /p $qPASSWORD$q $f"
#ifdef SignTool
SignTool=signtool
#endif

[Tasks]
Name: "startatlogin"; Description: "Start LanceDB Sync when I sign in"; GroupDescription: "Options:"
Name: "desktopicon"; Description: "Create a desktop shortcut"; GroupDescription: "Options:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\LanceDB Sync"; Filename: "{app}\LanceDBSync.exe"
Name: "{autodesktop}\LanceDB Sync"; Filename: "{app}\LanceDBSync.exe"; Tasks: desktopicon

[Registry]
; The same value the app's own "Start at login" toggle writes (app/ui/autostart.py), so the two
; agree; removed on uninstall.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; \
  ValueName: "LanceDB Sync"; ValueData: """{app}\LanceDBSync.exe"""; \
  Flags: uninsdeletevalue; Tasks: startatlogin

[Run]
Filename: "{app}\LanceDBSync.exe"; Description: "Start LanceDB Sync now"; \
  Flags: nowait postinstall skipifsilent

[Code]
var
  RemoveData: Boolean;

function InitializeUninstall(): Boolean;
begin
  RemoveData := (UninstallSilent() = False) and
    (MsgBox('Also delete your LanceDB Sync index, settings and logs?' + #13#10 +
            '(Choose No to keep them for a later reinstall.)',
            mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES);
  Result := True;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and RemoveData then
  begin
    DelTree(ExpandConstant('{localappdata}\lancedb-sync'), True, True, True);
    DelTree(ExpandConstant('{userappdata}\lancedb-sync'), True, True, True);
  end;
end;
