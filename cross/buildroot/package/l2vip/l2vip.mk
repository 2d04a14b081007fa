################################################################################
#
# l2vip
#
################################################################################

L2VIP_VERSION = 0.1.0
# This BR2_EXTERNAL tree lives in cross/buildroot of the l2vip source.
L2VIP_SITE = $(BR2_EXTERNAL_L2VIP_PATH)/../..
L2VIP_SITE_METHOD = local
L2VIP_LICENSE = Apache-2.0
L2VIP_LICENSE_FILES = LICENSE

define L2VIP_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/l2vip \
		$(TARGET_DIR)/usr/sbin/l2vip
	$(INSTALL) -D -m 0644 $(@D)/rootfs/etc/l2vip/config.json \
		$(TARGET_DIR)/etc/l2vip/config.json
endef

# For "user": "l2vip" in /etc/l2vip/config.json.
define L2VIP_USERS
	l2vip -1 l2vip -1 * - - - l2vip daemon
endef

define L2VIP_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/rootfs/etc/init.d/S50l2vip \
		$(TARGET_DIR)/etc/init.d/S50l2vip
	$(INSTALL) -D -m 0644 $(@D)/rootfs/etc/default/l2vip \
		$(TARGET_DIR)/etc/default/l2vip
endef

$(eval $(cargo-package))
