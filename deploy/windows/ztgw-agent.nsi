; The ztgw agent for Windows 10 and 11: an installer built on Linux with Debian's nsis
; (deploy/scripts/package.sh). It installs the agent, gives its state directory
; (%ProgramData%\ztgw-agent, the device's keys) to SYSTEM and Administrators only, and
; schedules the certificate's renewal twice a day. Silent with /S.
;
;   makensis -DVERSION=0.1.0 -DEXE=path\to\ztgw-agent.exe -DDOCS=path\to\docs \
;            -DOUTFILE=ztgw-agent-0.1.0-setup.exe deploy/windows/ztgw-agent.nsi

Unicode true
; A 64-bit installer: the agent is 64-bit, and so is every Windows 10/11 it supports.
Target amd64-unicode
SetCompressor /SOLID lzma
RequestExecutionLevel admin
ManifestSupportedOS all

!ifndef VERSION
  !error "give -DVERSION="
!endif

Name "ztgw agent ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\ztgw"
ShowInstDetails show
ShowUninstDetails show

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "ztgw agent"
VIAddVersionKey "FileDescription" "ztgw zero-trust remote access: the employee's agent"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "ztgw"

Page directory
Page instfiles
UninstPage uninstConfirm
UninstPage instfiles

!define TASK "ztgw-agent renew"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\ztgw-agent"

Section "ztgw agent"
  SetShellVarContext all
  SetOutPath "$INSTDIR"
  File "${EXE}"
  File "/oname=employees.md" "${DOCS}\employees.md"
  File "/oname=posture.md" "${DOCS}\posture.md"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; The device's keys: SYSTEM and Administrators only, nothing inherited.
  CreateDirectory "$APPDATA\ztgw-agent"
  nsExec::ExecToLog 'icacls "$APPDATA\ztgw-agent" /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F"'
  Pop $0
  DetailPrint "state directory access: $0"

  ; The certificate is renewed before it expires, twice a day, as SYSTEM.
  nsExec::ExecToLog 'schtasks /Create /F /TN "${TASK}" /SC HOURLY /MO 12 /RU SYSTEM /TR "\"$INSTDIR\ztgw-agent.exe\" --state-dir \"$APPDATA\ztgw-agent\" renew --if-expiring-within 7d"'
  Pop $0
  DetailPrint "renewal task: $0"

  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "ztgw agent"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "ztgw"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Section "Uninstall"
  SetShellVarContext all
  nsExec::ExecToLog 'schtasks /Delete /F /TN "${TASK}"'
  Pop $0
  ; A session's tunnel, if one is up.
  nsExec::ExecToLog '"$PROGRAMFILES64\WireGuard\wireguard.exe" /uninstalltunnelservice ztgw'
  Pop $0
  Delete "$INSTDIR\ztgw-agent.exe"
  Delete "$INSTDIR\employees.md"
  Delete "$INSTDIR\posture.md"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
  ; The device's keys stay in $APPDATA\ztgw-agent: remove them by hand to forget the
  ; enrolment.
SectionEnd
