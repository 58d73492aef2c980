# SPDX-License-Identifier: GPL-2.0-only
#
# The vfio_cpr library, for any Makefile that includes this file: the
# project's user/Makefile and the kselftest target (in the project and in a
# kernel tree, where scripts/intree.sh puts a copy of this folder).
#
# In:  LIBVFIO_CPR_OUT  folder for the objects
# Out: LIBVFIO_CPR_SRC, LIBVFIO_CPR_OBJ, LIBVFIO_CPR_INC (an -I flag)

LIBVFIO_CPR_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# In the project the headers sit in ../include, in a kernel tree in include/.
LIBVFIO_CPR_INCDIR := $(firstword $(wildcard $(LIBVFIO_CPR_DIR)/include \
				     $(LIBVFIO_CPR_DIR)/../include))

LIBVFIO_CPR_SRC := $(sort $(wildcard $(LIBVFIO_CPR_DIR)/*.c))
LIBVFIO_CPR_OBJ := $(patsubst $(LIBVFIO_CPR_DIR)/%.c,$(LIBVFIO_CPR_OUT)/%.o,\
		     $(LIBVFIO_CPR_SRC))
# The API's headers, and the library's own beside its sources.
LIBVFIO_CPR_HDR := $(wildcard $(LIBVFIO_CPR_INCDIR)/vfio_cpr/*.h)
LIBVFIO_CPR_OWN_HDR := $(wildcard $(LIBVFIO_CPR_DIR)/*.h)
LIBVFIO_CPR_INC := -I$(LIBVFIO_CPR_INCDIR)

$(LIBVFIO_CPR_OUT)/%.o: $(LIBVFIO_CPR_DIR)/%.c $(LIBVFIO_CPR_HDR) \
			 $(LIBVFIO_CPR_OWN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wunused-parameter $(CPPFLAGS) $(LIBVFIO_CPR_INC) \
		-c $< -o $@
