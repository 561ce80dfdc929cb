/*
 * Only for type-checking the macOS agent on Linux (deploy/scripts/test.sh): ring's C
 * sources include Apple's TargetConditionals.h, which comes with Xcode's SDK. These
 * are the values that header gives on macOS. A real macOS build uses the SDK's own.
 */
#ifndef ZTGW_TARGET_CONDITIONALS_H
#define ZTGW_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_TV 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#endif
