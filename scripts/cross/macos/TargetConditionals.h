/* For clippy's check builds of the macOS targets only (scripts/cross.sh): the one macro file of
 * Apple's SDK that ring's C code includes, saying "macOS". Nothing built with it is linked or run. */
#ifndef JUMPGATE_TARGET_CONDITIONALS_H
#define JUMPGATE_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#endif
