################################################################################
#
# l2vip
#
################################################################################

# The download is a git clone of the l2vip repository made into a tarball,
# with the crates vendored into it by pkg-cargo's download post process,
# so the build runs `cargo build --offline --locked`. By default: branch
# main of the checkout this BR2_EXTERNAL tree lives in (cross/buildroot).
# A product pins a release: L2VIP_VERSION a tag, L2VIP_SITE the published
# repository, and the archive's sha256 in l2vip.hash (Buildroot prints it;
# l2vip's cross/buildroot-cargo makes the same archive).
L2VIP_VERSION = main
L2VIP_SITE = $(BR2_EXTERNAL_L2VIP_PATH)/../..
L2VIP_SITE_METHOD = git
L2VIP_LICENSE = Apache-2.0
L2VIP_LICENSE_FILES = LICENSE

# For working on l2vip itself, in local.mk (edits are taken as they are):
#   L2VIP_OVERRIDE_SRCDIR = /path/to/l2vip
# The download step, and with it the vendoring, is skipped then: the copy
# is vendored after the rsync instead, so the build stays offline.
L2VIP_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude fuzz/target --exclude VENDOR --exclude .cargo
ifneq ($(L2VIP_OVERRIDE_SRCDIR),)
define L2VIP_CARGO_VENDOR
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(HOST_MAKE_ENV) $(PKG_CARGO_ENV) \
		cargo vendor --manifest-path Cargo.toml --locked VENDOR \
		> $(@D)/.cargo/config.toml
endef
L2VIP_POST_RSYNC_HOOKS += L2VIP_CARGO_VENDOR
endif

# pkg-cargo builds with --release, or with the dev profile when
# BR2_ENABLE_DEBUG is set; cargo puts them in release/ and debug/.
L2VIP_BUILD_DIR = $(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)

define L2VIP_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(L2VIP_BUILD_DIR)/l2vip $(TARGET_DIR)/usr/sbin/l2vip
	$(INSTALL) -D -m 0644 $(@D)/rootfs/etc/l2vip/config.json \
		$(TARGET_DIR)/etc/l2vip/config.json
	$(INSTALL) -D -m 0755 $(@D)/rootfs/usr/libexec/l2vip/conntrackd \
		$(TARGET_DIR)/usr/libexec/l2vip/conntrackd
endef

# The systemd unit starts it as this user; with SysV init, "user": "l2vip"
# in /etc/l2vip/config.json makes it switch after start-up.
define L2VIP_USERS
	l2vip -1 l2vip -1 * - - - l2vip daemon
endef

define L2VIP_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(L2VIP_PKGDIR)/S50l2vip \
		$(TARGET_DIR)/etc/init.d/S50l2vip
endef

define L2VIP_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(L2VIP_PKGDIR)/l2vip.service \
		$(TARGET_DIR)/usr/lib/systemd/system/l2vip.service
endef

$(eval $(cargo-package))
