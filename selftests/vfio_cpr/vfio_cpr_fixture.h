/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One fixture of vfio_cpr_test.c, generated: included once per IRQ type
 * with CPR_FIXTURE (the fixture's name) and CPR_FIXTURE_IRQ (its
 * VFIO_PCI_*_IRQ_INDEX) defined.  Every fixture runs through the same
 * variants - each (VFIO interface, handoff mode) - and takes the device
 * the same way; only the IRQ type differs.  No include guard: that is the
 * point.
 */

#define CPR_FIXTURE_OF(f)		FIXTURE(f)
#define CPR_FIXTURE_VARIANT_OF(f)	FIXTURE_VARIANT(f)
#define CPR_VARIANT_ADD(f, v)		FIXTURE_VARIANT_ADD(f, v)
#define CPR_SETUP_OF(f)			FIXTURE_SETUP(f)
#define CPR_TEARDOWN_OF(f)		FIXTURE_TEARDOWN(f)

CPR_FIXTURE_OF(CPR_FIXTURE) {
	struct gen g;
};

CPR_FIXTURE_VARIANT_OF(CPR_FIXTURE) {
	enum cpr_vfio_iface iface;
	enum handoff_mode mode;
};

CPR_VARIANT_ADD(CPR_FIXTURE, group_exec) {
	.iface = CPR_VFIO_IFACE_GROUP,
	.mode = MODE_EXEC,
};

CPR_VARIANT_ADD(CPR_FIXTURE, group_socket) {
	.iface = CPR_VFIO_IFACE_GROUP,
	.mode = MODE_SOCKET,
};

CPR_VARIANT_ADD(CPR_FIXTURE, cdev_exec) {
	.iface = CPR_VFIO_IFACE_CDEV,
	.mode = MODE_EXEC,
};

CPR_VARIANT_ADD(CPR_FIXTURE, cdev_socket) {
	.iface = CPR_VFIO_IFACE_CDEV,
	.mode = MODE_SOCKET,
};

CPR_SETUP_OF(CPR_FIXTURE)
{
	const char *why = take_device(&self->g, CPR_FIXTURE_IRQ,
				      variant->iface, variant->mode);

	if (why)
		SKIP(return, "%s", why);
}

CPR_TEARDOWN_OF(CPR_FIXTURE)
{
	release_device(&self->g);
}

#undef CPR_FIXTURE_OF
#undef CPR_FIXTURE_VARIANT_OF
#undef CPR_VARIANT_ADD
#undef CPR_SETUP_OF
#undef CPR_TEARDOWN_OF
