include $(sort $(wildcard $(BR2_EXTERNAL_L2VIP_PATH)/package/*/*.mk))
